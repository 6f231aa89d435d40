// CPU kernels of SPP-Align (sampling="bilinear"): the spatial pyramid on RoIAlign's
// continuous coordinates, built with spp_cpu_cells.cpp by spp_triton/cpu_kernel.py and
// registered as torch.ops.spp_triton_cpu.align_{forward,backward} (spp_cpu_ops.cpp).
//
// Per RoI, Python (geometry.align_table) gives the batch, the level, the continuous
// window (start, size per axis) and the samples per bin r_y, r_x of every sampled grid
// S (geometry.PoolSpec.sampled_grids: G = max(pyramid) when every entry divides it,
// else each entry). This file applies the rest of the rule, in its one lattice_axis
// function (geometry.lattice_coords then geometry.bilinear_axis, the same float
// operations in the same order; built with -ffp-contract=off, so no multiply-add is
// fused): the (S r_y) x (S r_x) lattice points, their corners and weights. A sample is
// ((w1 v1 + w2 v2) + w3 v3) + w4 v4 in float (double for double), 0 outside the map.
//
// Forward: one work item per (RoI, block of channels), as the cells kernel. The
// lattice is sampled once: bin (p, q) of S holds points [p r_y, (p + 1) r_y) x
// [q r_x, (q + 1) r_x), scanned row-major with the channels innermost (contiguous, so
// vectorised, on channels-last maps). Max keeps the first maximum (NaN beats non-NaN,
// -0.0 == +0.0) and its lattice index ty * (S r_x) + tx; avg sums. A nested pyramid's
// coarser bins are exact unions of the fine bins (derive_grid: the best value with the
// smallest lattice index, i.e. the first in row-major order; avg: sums of sums).
//
// Backward: parallel over blocks of kBackwardBlock channels, each thread walking the
// RoIs in order (bit-identical run to run). Max: each bin's gradient times its chosen
// sample's corner weights, at the corners. Avg: per lattice point, the sum over the
// pyramid entries whose bins hold it of gradient / samples in the bin, times the
// point's corner weights.

#include "spp_cpu.h"

namespace spp_cpu {
namespace {

// geometry.align_table: meta (K, 2 + 2 S) int64, box (K, 4) float.
enum { kBatch = 0, kLevel = 1, kRatios = 2 };
enum { kStartX = 0, kStartY = 1, kSizeW = 2, kSizeH = 3 };

// A lattice point along one axis: its two neighbouring cells and their weights.
struct AxisPoint {
  int64_t low, high;
  float w_low, w_high;
  bool inside;  // false: the sample is 0 (the point lies beyond [-1, cells])
};

// Point t of the lattice of ``grid`` bins with r samples per bin over [start, start +
// size), on an axis of ``cells`` cells: geometry.lattice_coords and bilinear_axis.
inline AxisPoint lattice_axis(float start, float size, int64_t grid, int64_t r, int64_t t, int64_t cells) {
  const float step = size / static_cast<float>(grid);
  const float coord = (start + static_cast<float>(t / r) * step) +
                      ((static_cast<float>(t % r) + 0.5f) * step) / static_cast<float>(r);
  AxisPoint a{};
  a.inside = coord >= -1.0f && coord <= static_cast<float>(cells);
  if (!a.inside) return a;
  float c = coord <= 0.0f ? 0.0f : coord;
  a.low = static_cast<int64_t>(c);
  if (a.low >= cells - 1) {
    a.low = a.high = cells - 1;
    c = static_cast<float>(a.low);
  } else {
    a.high = a.low + 1;
  }
  a.w_high = c - static_cast<float>(a.low);
  a.w_low = 1.0f - a.w_high;
  return a;
}

// One RoI's lattice on a sampled grid: its axes and samples per bin.
struct Lattice {
  std::vector<AxisPoint> ys, xs;
  int64_t grid = 0, ry = 0, rx = 0;
  void set(const int64_t* m, const float* bx, int64_t slot, int64_t g, int64_t height, int64_t width) {
    grid = g;
    ry = m[kRatios + 2 * slot];
    rx = m[kRatios + 2 * slot + 1];
    ys.resize(g * ry);
    xs.resize(g * rx);
    for (int64_t t = 0; t < g * ry; ++t) ys[t] = lattice_axis(bx[kStartY], bx[kSizeH], g, ry, t, height);
    for (int64_t t = 0; t < g * rx; ++t) xs[t] = lattice_axis(bx[kStartX], bx[kSizeW], g, rx, t, width);
  }
  int64_t points_x() const { return grid * rx; }
};

// The four corners of a sample: their cells and weights (w1 v_ll + w2 v_lh + w3 v_hl + w4 v_hh).
struct Corners {
  int64_t cell[4];
  float w[4];
  Corners(const AxisPoint& ay, const AxisPoint& ax, int64_t width) {
    cell[0] = ay.low * width + ax.low;
    cell[1] = ay.low * width + ax.high;
    cell[2] = ay.high * width + ax.low;
    cell[3] = ay.high * width + ax.high;
    w[0] = ay.w_low * ax.w_low;
    w[1] = ay.w_low * ax.w_high;
    w[2] = ay.w_high * ax.w_low;
    w[3] = ay.w_high * ax.w_high;
  }
};

// Every bin of the lattice's S x S grid, for channels [0, cb) (addressing as the cells
// kernel's pool_grid). kMax: val = the first maximal sample, idx = its lattice index;
// else val = the sum of the bin's samples.
template <typename scalar_t, typename acc_t, bool kCL, bool kMax>
void sample_bins(const scalar_t* base, int64_t cell_stride, int64_t chan_stride, int64_t width, int64_t cb,
                 const Lattice& lat, acc_t* __restrict__ val, int32_t* __restrict__ idx) {
  const int64_t cs = kCL ? 1 : chan_stride;
  const int64_t s = lat.grid, px = lat.points_x();
  for (int64_t p = 0; p < s; ++p) {
    for (int64_t q = 0; q < s; ++q) {
      acc_t* __restrict__ bv = val + (p * s + q) * cb;
      int32_t* __restrict__ bi = idx + (p * s + q) * cb;
      for (int64_t c = 0; c < cb; ++c) {
        bv[c] = kMax ? -std::numeric_limits<acc_t>::infinity() : acc_t(0);
        if constexpr (kMax) bi[c] = static_cast<int32_t>(p * lat.ry * px + q * lat.rx);  // kept if all are -inf
      }
      for (int64_t ty = p * lat.ry; ty < (p + 1) * lat.ry; ++ty) {
        const AxisPoint& ay = lat.ys[ty];
        for (int64_t tx = q * lat.rx; tx < (q + 1) * lat.rx; ++tx) {
          const AxisPoint& ax = lat.xs[tx];
          const int32_t point = static_cast<int32_t>(ty * px + tx);
          if (!(ay.inside && ax.inside)) {  // the sample is 0
            if constexpr (kMax) {
              for (int64_t c = 0; c < cb; ++c) {
                const acc_t b = bv[c];
                const bool up = acc_t(0) > b;  // 0 is not NaN: it beats only smaller values
                bv[c] = up ? acc_t(0) : b;
                bi[c] = up ? point : bi[c];
              }
            }
            continue;
          }
          const Corners k(ay, ax, width);
          const scalar_t* __restrict__ p1 = base + k.cell[0] * cell_stride;
          const scalar_t* __restrict__ p2 = base + k.cell[1] * cell_stride;
          const scalar_t* __restrict__ p3 = base + k.cell[2] * cell_stride;
          const scalar_t* __restrict__ p4 = base + k.cell[3] * cell_stride;
          const acc_t w1 = k.w[0], w2 = k.w[1], w3 = k.w[2], w4 = k.w[3];
          for (int64_t c = 0; c < cb; ++c) {
            const acc_t v = ((w1 * static_cast<acc_t>(p1[c * cs]) + w2 * static_cast<acc_t>(p2[c * cs])) +
                             w3 * static_cast<acc_t>(p3[c * cs])) +
                            w4 * static_cast<acc_t>(p4[c * cs]);
            if constexpr (kMax) {
              const acc_t b = bv[c];
              const bool up = (v > b) | ((v != v) & (b == b));
              bv[c] = up ? v : b;
              bi[c] = up ? point : bi[c];
            } else {
              bv[c] += v;
            }
          }
        }
      }
    }
  }
}

// Sums of an n x n grid's bins from the fine G x G sums, n | G (avg mode's derive_grid).
template <typename acc_t>
void derive_sums(const acc_t* __restrict__ fine, int64_t g, int64_t n, int64_t cb, acc_t* __restrict__ out) {
  const int64_t f = g / n;
  std::fill(out, out + n * n * cb, acc_t(0));
  for (int64_t p = 0; p < n; ++p)
    for (int64_t q = 0; q < n; ++q)
      for (int64_t a = 0; a < f; ++a)
        for (int64_t b = 0; b < f; ++b) {
          const acc_t* __restrict__ src = fine + ((p * f + a) * g + q * f + b) * cb;
          acc_t* __restrict__ dst = out + (p * n + q) * cb;
          for (int64_t c = 0; c < cb; ++c) dst[c] += src[c];
        }
}

struct Tables {
  const int64_t* meta;
  const float* box;
  int64_t meta_cols;
};

Tables tables(const Tensor& meta, const Tensor& box, int64_t sampled) {
  TORCH_CHECK(meta.scalar_type() == at::kLong && meta.dim() == 2 && meta.size(1) == kRatios + 2 * sampled &&
                  meta.is_contiguous(),
              "spp_triton_cpu: meta must be a contiguous (K, 2 + 2 S) int64 tensor (geometry.align_table)");
  TORCH_CHECK(box.scalar_type() == at::kFloat && box.dim() == 2 && box.size(1) == 4 && box.size(0) == meta.size(0) &&
                  box.is_contiguous(),
              "spp_triton_cpu: box must be a contiguous (K, 4) float32 tensor (geometry.align_table)");
  return {meta.data_ptr<int64_t>(), box.data_ptr<float>(), meta.size(1)};
}

void check_sampled(at::IntArrayRef pyramid, at::IntArrayRef sampled, int64_t fine_grid) {
  for (int64_t n : pyramid) TORCH_CHECK(n >= 1 && n <= 64, "spp_triton_cpu: pyramid entries must be in [1, 64]");
  if (fine_grid > 0) {
    TORCH_CHECK(sampled.size() == 1 && sampled[0] == fine_grid, "spp_triton_cpu: a nested pyramid samples G only");
    for (int64_t n : pyramid) TORCH_CHECK(fine_grid % n == 0, "spp_triton_cpu: fine grid must be a multiple of n");
  } else {
    TORCH_CHECK(sampled.equals(pyramid), "spp_triton_cpu: a non-nested pyramid samples every grid");
  }
}

template <typename scalar_t, bool kCL>
void forward_impl(const std::vector<Tensor>& feats, const Tables& tb, const std::vector<int64_t>& pyramid,
                  const std::vector<int64_t>& sampled, int64_t fine_grid, bool is_max, Tensor& out, Tensor& argmax) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t kBlock = channel_block<kCL>();
  const Levels lv = collect(feats);
  const int64_t k_total = out.size(0), channels = feats[0].size(1), bins = out.size(2);
  const int64_t blocks = (channels + kBlock - 1) / kBlock;
  scalar_t* out_p = out.data_ptr<scalar_t>();
  int32_t* arg_p = is_max ? argmax.data_ptr<int32_t>() : nullptr;
  std::vector<int64_t> first(pyramid.size());  // each entry's first output bin
  for (size_t i = 1; i < pyramid.size(); ++i) first[i] = first[i - 1] + pyramid[i - 1] * pyramid[i - 1];

  at::parallel_for(0, k_total * blocks, 1, [&](int64_t begin, int64_t end) {
    Lattice lat;
    std::vector<acc_t> val, coarse_val;
    std::vector<int32_t> idx, coarse_idx;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t k = item / blocks, c0 = (item % blocks) * kBlock;
      const int64_t cb = std::min(kBlock, channels - c0);
      const int64_t* m = tb.meta + k * tb.meta_cols;
      const float* bx = tb.box + k * 4;
      const int64_t level = m[kLevel], width = lv.width[level], height = lv.height[level];
      const int64_t plane = height * width;
      const scalar_t* base = static_cast<const scalar_t*>(lv.data[level]) +
                             (kCL ? m[kBatch] * plane * channels + c0 : (m[kBatch] * channels + c0) * plane);
      const int64_t cell_stride = kCL ? channels : 1, chan_stride = kCL ? 1 : plane;
      // Writes grid entry i's bins (vals and indices, or sums over ``samples`` each).
      auto store = [&](size_t i, const acc_t* sv, const int32_t* si, int64_t samples) {
        const int64_t n = pyramid[i];
        for (int64_t c = 0; c < cb; ++c) {
          scalar_t* o = out_p + (k * channels + c0 + c) * bins + first[i];
          int32_t* a = is_max ? arg_p + (k * channels + c0 + c) * bins + first[i] : nullptr;
          for (int64_t b = 0; b < n * n; ++b) {
            if (is_max) {
              o[b] = static_cast<scalar_t>(sv[b * cb + c]);
              a[b] = si[b * cb + c];
            } else {
              o[b] = static_cast<scalar_t>(sv[b * cb + c] / static_cast<acc_t>(samples));
            }
          }
        }
      };
      for (size_t gi = 0; gi < sampled.size(); ++gi) {
        const int64_t s = sampled[gi];
        lat.set(m, bx, static_cast<int64_t>(gi), s, height, width);
        val.resize(s * s * cb);
        idx.resize(s * s * cb);
        if (is_max) {
          sample_bins<scalar_t, acc_t, kCL, true>(base, cell_stride, chan_stride, width, cb, lat, val.data(),
                                                  idx.data());
        } else {
          sample_bins<scalar_t, acc_t, kCL, false>(base, cell_stride, chan_stride, width, cb, lat, val.data(),
                                                   idx.data());
        }
        const int64_t per_bin = lat.ry * lat.rx;
        if (fine_grid == 0) {  // the non-nested pyramid's entry gi is this grid
          store(gi, val.data(), idx.data(), per_bin);
          continue;
        }
        for (size_t i = 0; i < pyramid.size(); ++i) {
          const int64_t n = pyramid[i];
          if (n == s) {
            store(i, val.data(), idx.data(), per_bin);
            continue;
          }
          coarse_val.resize(n * n * cb);
          coarse_idx.resize(n * n * cb);
          if (is_max) {
            derive_grid<acc_t>(val.data(), idx.data(), s, n, cb, coarse_val.data(), coarse_idx.data());
          } else {
            derive_sums<acc_t>(val.data(), s, n, cb, coarse_val.data());
          }
          store(i, coarse_val.data(), coarse_idx.data(), per_bin * (s / n) * (s / n));
        }
      }
    }
  });
}

template <typename scalar_t, typename acc_t, bool kCL>
void backward_impl(const Tensor& grad_out, const Tensor& argmax, const Tables& tb, const std::vector<int64_t>& heights,
                   const std::vector<int64_t>& widths, const std::vector<int64_t>& pyramid,
                   const std::vector<int64_t>& sampled, int64_t fine_grid, bool is_max, std::vector<Tensor>& grads) {
  const int64_t levels = static_cast<int64_t>(heights.size());
  const int64_t k_total = grad_out.size(0), channels = grad_out.size(1), bins = grad_out.size(2);
  const scalar_t* g_p = grad_out.data_ptr<scalar_t>();
  const int32_t* a_p = is_max ? argmax.data_ptr<int32_t>() : nullptr;
  std::vector<acc_t*> dst(levels);
  for (int64_t l = 0; l < levels; ++l) dst[l] = grads[l].data_ptr<acc_t>();
  // Each output bin's sampled grid (its slot in ``sampled``); each entry's first bin.
  std::vector<int64_t> slot(bins), first(pyramid.size());
  for (size_t i = 0, b = 0; i < pyramid.size(); ++i) {
    first[i] = static_cast<int64_t>(b);
    for (int64_t j = 0; j < pyramid[i] * pyramid[i]; ++j, ++b) slot[b] = fine_grid ? 0 : static_cast<int64_t>(i);
  }
  const int64_t blocks = (channels + kBackwardBlock - 1) / kBackwardBlock;

  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<Lattice> lats(sampled.size());
    std::vector<std::vector<Corners>> corners(sampled.size());  // max mode: every point's corners
    std::vector<std::vector<bool>> inside(sampled.size());
    std::vector<acc_t> factor(kBackwardBlock), shares;
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t c0 = blk * kBackwardBlock, cb = std::min(kBackwardBlock, channels - c0);
      for (int64_t k = 0; k < k_total; ++k) {
        const int64_t* m = tb.meta + k * tb.meta_cols;
        const float* bx = tb.box + k * 4;
        const int64_t level = m[kLevel], width = widths[level], size = heights[level] * width;
        const int64_t cs = kCL ? 1 : size, cell_step = kCL ? channels : 1;  // channel and cell strides
        acc_t* planes = dst[level] + m[kBatch] * channels * size + c0 * cs;
        const scalar_t* g = g_p + (k * channels + c0) * bins;
        for (size_t gi = 0; gi < sampled.size(); ++gi) {
          lats[gi].set(m, bx, static_cast<int64_t>(gi), sampled[gi], heights[level], width);
        }
        if (is_max) {
          // Every lattice point's corners once per RoI (not per bin and channel): the
          // chosen samples are then a lookup by their lattice index.
          for (size_t gi = 0; gi < sampled.size(); ++gi) {
            const Lattice& lat = lats[gi];
            corners[gi].clear();
            inside[gi].clear();
            for (const AxisPoint& ay : lat.ys) {
              for (const AxisPoint& ax : lat.xs) {
                corners[gi].emplace_back(ay, ax, width);
                inside[gi].push_back(ay.inside && ax.inside);
              }
            }
          }
          const int32_t* a = a_p + (k * channels + c0) * bins;
          for (int64_t c = 0; c < cb; ++c) {
            acc_t* plane = planes + c * cs;
            for (int64_t b = 0; b < bins; ++b) {
              const int64_t gi = slot[b];
              const int64_t t = std::min<int64_t>(std::max<int64_t>(a[c * bins + b], 0),
                                                  static_cast<int64_t>(corners[gi].size()) - 1);
              if (!inside[gi][t]) continue;
              const Corners& cr = corners[gi][t];
              const acc_t gb = static_cast<acc_t>(g[c * bins + b]);
              for (int i = 0; i < 4; ++i) plane[cr.cell[i] * cell_step] += gb * static_cast<acc_t>(cr.w[i]);
            }
          }
          continue;
        }
        for (size_t gi = 0; gi < sampled.size(); ++gi) {
          const Lattice& lat = lats[gi];
          const int64_t s = lat.grid, py = s * lat.ry, px = lat.points_x();
          // The entries whose bins hold this lattice's points, and their shares
          // shares[u][(bin) * cb + c] = grad / samples of the bin.
          std::vector<size_t> users;
          if (fine_grid) {
            for (size_t i = 0; i < pyramid.size(); ++i) users.push_back(i);
          } else {
            users.push_back(gi);
          }
          std::vector<int64_t> share_at(users.size());
          int64_t total = 0;
          for (size_t u = 0; u < users.size(); ++u) {
            share_at[u] = total;
            total += pyramid[users[u]] * pyramid[users[u]] * cb;
          }
          shares.resize(total);
          for (size_t u = 0; u < users.size(); ++u) {
            const int64_t n = pyramid[users[u]], f = s / n;
            const acc_t samples = static_cast<acc_t>(f * f * lat.ry * lat.rx);
            for (int64_t b = 0; b < n * n; ++b)
              for (int64_t c = 0; c < cb; ++c)
                shares[share_at[u] + b * cb + c] = static_cast<acc_t>(g[c * bins + first[users[u]] + b]) / samples;
          }
          for (int64_t ty = 0; ty < py; ++ty) {
            const AxisPoint& ay = lat.ys[ty];
            if (!ay.inside) continue;
            for (int64_t tx = 0; tx < px; ++tx) {
              const AxisPoint& ax = lat.xs[tx];
              if (!ax.inside) continue;
              std::fill(factor.begin(), factor.begin() + cb, acc_t(0));
              for (size_t u = 0; u < users.size(); ++u) {
                const int64_t n = pyramid[users[u]];
                const int64_t bin = (ty / (py / n)) * n + tx / (px / n);
                const acc_t* sh = shares.data() + share_at[u] + bin * cb;
                for (int64_t c = 0; c < cb; ++c) factor[c] += sh[c];
              }
              const Corners cr(ay, ax, width);
              for (int i = 0; i < 4; ++i) {
                acc_t* cell = planes + cr.cell[i] * cell_step;
                const acc_t w = static_cast<acc_t>(cr.w[i]);
                for (int64_t c = 0; c < cb; ++c) cell[c * cs] += factor[c] * w;
              }
            }
          }
        }
      }
    }
  });
}

// Corner reads of every RoI's lattice (one channel), and cells the maps hold.
std::pair<int64_t, int64_t> coverage(at::TensorList feats, const Tables& tb, int64_t k_total,
                                     const std::vector<int64_t>& sampled) {
  int64_t covered = 0, total = 0;
  for (int64_t k = 0; k < k_total; ++k) {
    const int64_t* m = tb.meta + k * tb.meta_cols;
    for (size_t gi = 0; gi < sampled.size(); ++gi) {
      covered += 4 * sampled[gi] * sampled[gi] * m[kRatios + 2 * gi] * m[kRatios + 2 * gi + 1];
    }
  }
  for (const auto& f : feats) total += f.size(0) * f.size(2) * f.size(3);
  return {covered, total};
}

}  // namespace

std::tuple<Tensor, Tensor> align_forward(at::TensorList feats_in, const Tensor& meta, const Tensor& box,
                                         at::IntArrayRef pyramid_in, at::IntArrayRef sampled_in, int64_t fine_grid,
                                         int64_t mode, bool channels_last_in) {
  const bool is_max = check_mode(mode) == kMax;
  TORCH_CHECK(!feats_in.empty(), "spp_triton_cpu: no feature levels");
  check_sampled(pyramid_in, sampled_in, fine_grid);
  const Tables tb = tables(meta, box, static_cast<int64_t>(sampled_in.size()));
  const std::vector<int64_t> pyramid = pyramid_in.vec(), sampled = sampled_in.vec();
  const int64_t k_total = meta.size(0);
  // Layout: as the cells kernel (channels-last in place; NCHW transposed once when the
  // lattices' corner reads outnumber the maps' cells, so the channel loops vectorise).
  bool channels_last = channels_last_in;
  if (!channels_last && feats_in[0].size(1) >= 4) {
    const auto [covered, total] = coverage(feats_in, tb, k_total, sampled);
    channels_last = covered >= total;
  }
  std::vector<Tensor> feats;
  for (const auto& f : feats_in) {
    feats.push_back(channels_last ? f.contiguous(at::MemoryFormat::ChannelsLast) : f.contiguous());
  }
  int64_t bins = 0;
  for (int64_t n : pyramid) bins += n * n;
  const auto& f0 = feats[0];
  Tensor out = at::empty({k_total, f0.size(1), bins}, f0.options().memory_format(at::MemoryFormat::Contiguous));
  Tensor argmax = at::empty({is_max ? k_total : 0, f0.size(1), bins}, out.options().dtype(at::kInt));
  if (!is_max) argmax = argmax.view({0});
  if (k_total == 0) return {out, argmax};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f0.scalar_type(), "spp_triton_cpu_align_forward", [&] {
    if (channels_last) {
      forward_impl<scalar_t, true>(feats, tb, pyramid, sampled, fine_grid, is_max, out, argmax);
    } else {
      forward_impl<scalar_t, false>(feats, tb, pyramid, sampled, fine_grid, is_max, out, argmax);
    }
  });
  return {out, argmax};
}

std::vector<Tensor> align_backward(const Tensor& grad_out_in, const Tensor& argmax_in, const Tensor& meta,
                                   const Tensor& box, at::IntArrayRef level_hw, int64_t images,
                                   at::IntArrayRef pyramid_in, at::IntArrayRef sampled_in, int64_t fine_grid,
                                   int64_t mode, bool channels_last) {
  const bool is_max = check_mode(mode) == kMax;
  const Tensor grad_out = grad_out_in.contiguous();
  check_sampled(pyramid_in, sampled_in, fine_grid);
  const Tables tb = tables(meta, box, static_cast<int64_t>(sampled_in.size()));
  TORCH_CHECK(grad_out.dim() == 3 && grad_out.size(0) == meta.size(0), "spp_triton_cpu: grad_out must be (K, C, B)");
  BackwardPlanes p = backward_planes(grad_out, argmax_in, level_hw, images, is_max, channels_last);
  const auto dtype = grad_out.scalar_type();
  const std::vector<int64_t> pyramid = pyramid_in.vec(), sampled = sampled_in.vec();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "spp_triton_cpu_align_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    if (channels_last) {
      backward_impl<scalar_t, acc_t, true>(grad_out, p.argmax, tb, p.heights, p.widths, pyramid, sampled, fine_grid,
                                           is_max, p.grads);
    } else {
      backward_impl<scalar_t, acc_t, false>(grad_out, p.argmax, tb, p.heights, p.widths, pyramid, sampled, fine_grid,
                                            is_max, p.grads);
    }
  });
  return finish(p, dtype);
}

}  // namespace spp_cpu
