// CPU kernels of spatial-pyramid RoI pooling, sampling="cells" (the paper), built on
// first use by spp_triton/cpu_kernel.py (torch.utils.cpp_extension.load, cached by
// torch's extension cache). Registered as torch.ops.spp_triton_cpu.{forward,backward}
// (spp_cpu_ops.cpp); the helpers it shares with the bilinear kernels: spp_cpu.h.
//
// The windows come from Python (geometry.window_table), so the projection lives in
// one place; this file only applies the bin rule of geometry.bin_bounds, in its one
// bin_bounds function:
//   start_i = lo + floor(i h / n),  end_i = lo + ceil((i + 1) h / n) - 1.
// The pooling mode is geometry.Mode's integer value (the Mode enum below).
//
// Forward: one work item per (RoI, block of 64 channels), parallel with
// at::parallel_for. The channel loops are innermost; they vectorise on channels-last
// features, which are read in place; NCHW features are transposed to channels-last
// once per call when the RoIs' windows cover more cells than the maps hold, else
// read in place with strided channel loops. Each bin is scanned in
// row-major order, channels innermost, keeping per channel the best value and its
// cell y * W + x, replaced only by a strictly better value: the first maximum. NaN
// counts as the largest (the first NaN wins); -0.0 == +0.0 (the first wins). When
// every pyramid entry divides G = max(pyramid) (max mode), only the G x G grid is
// scanned and coarser bins are exact unions of fine bins, whose winner is the best
// value with the smallest cell index, i.e. again the first in row-major order.
// Comparisons run in float (double for double), exact for half/bfloat16; the output
// is the element at the argmax, so NaN payloads and zero signs are its own. Avg sums
// each bin in row-major order in float (double for double), then divides.
//
// Backward is parallel over blocks of 16 channels: each channel's gradient planes
// belong to one thread, which adds the RoIs in order, so results are bit-identical
// run to run; each RoI's block of grad_out is one contiguous read.

#include "spp_cpu.h"

namespace spp_cpu {
namespace {

// Window table columns (int64, (K, 6)): geometry.WIN_*.
enum { kBatch = 0, kLevel = 1, kXLo = 2, kXHi = 3, kYLo = 4, kYHi = 5, kWinCols = 6 };


inline void bin_bounds(int64_t lo, int64_t hi, int64_t n, int64_t* start, int64_t* end) {
  const int64_t size = hi - lo + 1;
  for (int64_t i = 0; i < n; ++i) {
    start[i] = lo + (i * size) / n;
    end[i] = lo + ((i + 1) * size + n - 1) / n - 1;
  }
}

// Bin bounds of an n x n grid over window w (columns xs/xe, rows ys/ye).
struct GridBounds {
  int64_t xs[64], xe[64], ys[64], ye[64];
  GridBounds() = default;
  GridBounds(const int64_t* w, int64_t n) { set(w, n); }
  void set(const int64_t* w, int64_t n) {
    bin_bounds(w[kXLo], w[kXHi], n, xs, xe);
    bin_bounds(w[kYLo], w[kYHi], n, ys, ye);
  }
};



// Every bin of an n x n grid, for channels [0, cb) of the block. ``base`` points at
// channel c0 of cell 0 of the image's level; cell y * W + x is at base + cell *
// cell_stride, channel c at + c * chan_stride (1 when kCL). Writes val[(i * n + j) * cb + c]:
// kMax: the first maximum, and idx[...] = its cell y * W + x; each bin is scanned in
// row-major order, replacing only on a strictly better value (NaN beats non-NaN), which
// keeps the first maximum; -0.0 and +0.0 compare equal. Otherwise: the mean (row-major
// sum in acc_t, then / count); idx is unused.
template <typename scalar_t, typename acc_t, bool kCL, bool kMax>
void pool_grid(const scalar_t* base, int64_t cell_stride, int64_t chan_stride, int64_t width, int64_t cb,
               const int64_t* w, int64_t n, acc_t* __restrict__ val, int32_t* __restrict__ idx) {
  const int64_t cs = kCL ? 1 : chan_stride;
  const GridBounds g(w, n);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      acc_t* __restrict__ bv = val + (i * n + j) * cb;
      int32_t* __restrict__ bi = idx + (i * n + j) * cb;
      const int32_t first = static_cast<int32_t>(g.ys[i] * width + g.xs[j]);
      for (int64_t c = 0; c < cb; ++c) {
        if constexpr (kMax) {
          bv[c] = -std::numeric_limits<acc_t>::infinity();
          bi[c] = first;  // kept when every value is -inf
        } else {
          bv[c] = 0;
        }
      }
      for (int64_t y = g.ys[i]; y <= g.ye[i]; ++y) {
        for (int64_t x = g.xs[j]; x <= g.xe[j]; ++x) {
          const int32_t cell = static_cast<int32_t>(y * width + x);
          const scalar_t* __restrict__ p = base + static_cast<int64_t>(cell) * cell_stride;
          for (int64_t c = 0; c < cb; ++c) {
            const acc_t v = static_cast<acc_t>(p[c * cs]);
            if constexpr (kMax) {
              const acc_t b = bv[c];
              const bool up = (v > b) | ((v != v) & (b == b));
              bv[c] = up ? v : b;
              bi[c] = up ? cell : bi[c];
            } else {
              bv[c] += v;
            }
          }
        }
      }
      if constexpr (!kMax) {
        const acc_t count = static_cast<acc_t>((g.ye[i] - g.ys[i] + 1) * (g.xe[j] - g.xs[j] + 1));
        for (int64_t c = 0; c < cb; ++c) bv[c] = bv[c] / count;
      }
    }
  }
}



template <typename scalar_t, bool kCL>
void forward_impl(const std::vector<Tensor>& feats, const Tensor& win, const std::vector<int64_t>& pyramid,
                  int64_t fine_grid, bool is_max, Tensor& out, Tensor& argmax) {
  using acc_t = at::opmath_type<scalar_t>;
  // For float and double the kept value is the element's own bits (selects only), so
  // it is the output; half and bfloat16 re-read the element to keep NaN payloads.
  constexpr bool kExactAcc = std::is_same<scalar_t, acc_t>::value;
  constexpr int64_t kBlock = channel_block<kCL>();
  const Levels lv = collect(feats);
  const int64_t k_total = win.size(0), channels = feats[0].size(1), bins = out.size(2);
  const int64_t blocks = (channels + kBlock - 1) / kBlock;
  const int64_t* wins = win.data_ptr<int64_t>();
  scalar_t* out_p = out.data_ptr<scalar_t>();
  int32_t* arg_p = is_max ? argmax.data_ptr<int32_t>() : nullptr;
  int64_t max_n = std::max<int64_t>(fine_grid, 1);
  for (int64_t n : pyramid) max_n = std::max(max_n, n);

  at::parallel_for(0, k_total * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> val(max_n * max_n * kBlock), fine_val(fine_grid * fine_grid * kBlock);
    std::vector<int32_t> idx(max_n * max_n * kBlock), fine_idx(fine_grid * fine_grid * kBlock);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t k = item / blocks, c0 = (item % blocks) * kBlock;
      const int64_t cb = std::min(kBlock, channels - c0);
      const int64_t* w = wins + k * kWinCols;
      const int64_t level = w[kLevel], width = lv.width[level];
      const int64_t plane = lv.height[level] * width;
      // NHWC: ((b * H + y) * W + x) * C + c.  NCHW: ((b * C + c) * H + y) * W + x.
      const scalar_t* base = static_cast<const scalar_t*>(lv.data[level]) +
                             (kCL ? w[kBatch] * plane * channels + c0 : (w[kBatch] * channels + c0) * plane);
      const int64_t cell_stride = kCL ? channels : 1, chan_stride = kCL ? 1 : plane;
      if (is_max && fine_grid > 0) {
        pool_grid<scalar_t, acc_t, kCL, true>(base, cell_stride, chan_stride, width, cb, w, fine_grid,
                                              fine_val.data(), fine_idx.data());
      }
      int64_t offset = 0;
      for (int64_t n : pyramid) {
        if (!is_max) {
          pool_grid<scalar_t, acc_t, kCL, false>(base, cell_stride, chan_stride, width, cb, w, n, val.data(),
                                                 idx.data());
          for (int64_t c = 0; c < cb; ++c) {
            scalar_t* o = out_p + (k * channels + c0 + c) * bins + offset;
            for (int64_t b = 0; b < n * n; ++b) o[b] = static_cast<scalar_t>(val[b * cb + c]);
          }
          offset += n * n;
          continue;
        }
        const acc_t* sv = val.data();
        const int32_t* si = idx.data();
        if (fine_grid == 0) {
          pool_grid<scalar_t, acc_t, kCL, true>(base, cell_stride, chan_stride, width, cb, w, n, val.data(),
                                                idx.data());
        } else if (n == fine_grid) {
          sv = fine_val.data();
          si = fine_idx.data();
        } else {
          derive_grid<acc_t>(fine_val.data(), fine_idx.data(), fine_grid, n, cb, val.data(), idx.data());
        }
        for (int64_t c = 0; c < cb; ++c) {
          scalar_t* o = out_p + (k * channels + c0 + c) * bins + offset;
          int32_t* a = arg_p + (k * channels + c0 + c) * bins + offset;
          for (int64_t b = 0; b < n * n; ++b) {
            const int32_t cell = si[b * cb + c];
            if constexpr (kExactAcc) {
              o[b] = sv[b * cb + c];
            } else {
              o[b] = base[static_cast<int64_t>(cell) * cell_stride + c * chan_stride];
            }
            a[b] = cell;
          }
        }
        offset += n * n;
      }
    }
  });
}

void check_win_pyramid(const Tensor& win, at::IntArrayRef pyramid) {
  TORCH_CHECK(win.scalar_type() == at::kLong && win.dim() == 2 && win.size(1) == kWinCols && win.is_contiguous(),
              "spp_triton_cpu: win must be a contiguous (K, 6) int64 tensor");
  for (int64_t n : pyramid) TORCH_CHECK(n >= 1 && n <= 64, "spp_triton_cpu: pyramid entries must be in [1, 64]");
}

void check_common(at::TensorList feats, const Tensor& win, at::IntArrayRef pyramid) {
  TORCH_CHECK(!feats.empty(), "spp_triton_cpu: no feature levels");
  check_win_pyramid(win, pyramid);
}

// Cells the RoIs' windows cover, summed over RoIs (one channel), and cells the maps hold.
std::pair<int64_t, int64_t> coverage(at::TensorList feats, const Tensor& win) {
  int64_t covered = 0, total = 0;
  const int64_t* w = win.data_ptr<int64_t>();
  for (int64_t k = 0; k < win.size(0); ++k, w += kWinCols) {
    covered += (w[kXHi] - w[kXLo] + 1) * (w[kYHi] - w[kYLo] + 1);
  }
  for (const auto& f : feats) total += f.size(0) * f.size(2) * f.size(3);
  return {covered, total};
}

}  // namespace

std::tuple<Tensor, Tensor> spp_forward(at::TensorList feats_in, const Tensor& win, at::IntArrayRef pyramid_in,
                                       int64_t fine_grid, int64_t mode, bool channels_last_in) {
  const bool is_max = check_mode(mode) == kMax;
  check_common(feats_in, win, pyramid_in);  // before coverage() reads win
  // Channels-last makes the channel loops contiguous, so they vectorise. Channels-last
  // maps (``channels_last_in``: spp_triton.registry.memory_format) are read in place;
  // NCHW maps are transposed once when the windows together cover at least as many cells
  // as the maps hold (a detector's RoIs overlap: ~5x for 512 demo-like RoIs per batch),
  // else read in place as NCHW.
  bool channels_last = channels_last_in;
  if (!channels_last && feats_in[0].size(1) >= 4) {
    const auto [covered, total] = coverage(feats_in, win);
    channels_last = covered >= total;
  }
  std::vector<Tensor> feats;
  for (const auto& f : feats_in) {
    feats.push_back(channels_last ? f.contiguous(at::MemoryFormat::ChannelsLast) : f.contiguous());
  }
  const std::vector<int64_t> pyramid = pyramid_in.vec();
  TORCH_CHECK(fine_grid >= 0 && fine_grid <= 64, "spp_triton_cpu: bad fine grid");
  for (const auto& f : feats) {
    TORCH_CHECK(f.size(2) * f.size(3) <= std::numeric_limits<int32_t>::max(), "spp_triton_cpu: level too large");
  }
  int64_t bins = 0;
  for (int64_t n : pyramid) bins += n * n;
  const auto& f0 = feats[0];
  Tensor out = at::empty({win.size(0), f0.size(1), bins}, f0.options().memory_format(at::MemoryFormat::Contiguous));
  Tensor argmax = at::empty({is_max ? win.size(0) : 0, f0.size(1), bins}, out.options().dtype(at::kInt));
  if (!is_max) argmax = argmax.view({0});
  if (win.size(0) == 0) return {out, argmax};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f0.scalar_type(), "spp_triton_cpu_forward", [&] {
    if (channels_last) {
      forward_impl<scalar_t, true>(feats, win, pyramid, is_max ? fine_grid : 0, is_max, out, argmax);
    } else {
      forward_impl<scalar_t, false>(feats, win, pyramid, is_max ? fine_grid : 0, is_max, out, argmax);
    }
  });
  return {out, argmax};
}

namespace {

// Adds grad_out into ``grads`` (acc_t, zero-filled; NCHW, or channels-last when kCL: the
// element (b, c, cell) is at (b * C + c) * H W + cell, or (b * H W + cell) * C + c; the
// strides are compile-time constants or plain products, so the NCHW loops are those of
// the NCHW-only kernel this replaced, which measured up to 20 % faster than strides
// read from tables). Work items are
// blocks of kBackwardBlock channels; a block's thread walks the RoIs in order and reads
// each RoI's block of grad_out rows (contiguous), so every (image, channel) plane is
// written by one thread in a fixed order: bit-identical results run to run.

template <typename scalar_t, typename acc_t, bool kCL>
void backward_impl(const Tensor& grad_out, const Tensor& argmax, const Tensor& win,
                   const std::vector<int64_t>& heights, const std::vector<int64_t>& widths,
                   const std::vector<int64_t>& pyramid, bool is_max, std::vector<Tensor>& grads) {
  const int64_t levels = static_cast<int64_t>(heights.size());
  const int64_t k_total = win.size(0), channels = grad_out.size(1), bins = grad_out.size(2);
  const int64_t* wins = win.data_ptr<int64_t>();
  const scalar_t* g_p = grad_out.data_ptr<scalar_t>();
  const int32_t* a_p = is_max ? argmax.data_ptr<int32_t>() : nullptr;
  std::vector<acc_t*> dst(levels);
  std::vector<int64_t> sizes(levels);
  for (int64_t l = 0; l < levels; ++l) {
    dst[l] = grads[l].data_ptr<acc_t>();
    sizes[l] = heights[l] * widths[l];
  }
  const int64_t blocks = (channels + kBackwardBlock - 1) / kBackwardBlock;

  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    GridBounds bounds;  // one per thread, refilled per RoI and grid (avg mode)
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t c0 = blk * kBackwardBlock, cb = std::min(kBackwardBlock, channels - c0);
      for (int64_t k = 0; k < k_total; ++k) {
        const int64_t* w = wins + k * kWinCols;
        const int64_t level = w[kLevel], size = sizes[level];
        const int64_t cs = kCL ? 1 : size, cell_step = kCL ? channels : 1;  // channel and cell strides
        acc_t* planes = dst[level] + w[kBatch] * channels * size + c0 * cs;
        const scalar_t* g = g_p + (k * channels + c0) * bins;
        if (is_max) {
          const int32_t* a = a_p + (k * channels + c0) * bins;
          for (int64_t c = 0; c < cb; ++c) {
            acc_t* plane = planes + c * cs;
            for (int64_t b = 0; b < bins; ++b) {
              plane[static_cast<int64_t>(a[c * bins + b]) * cell_step] += static_cast<acc_t>(g[c * bins + b]);
            }
          }
          continue;
        }
        const int64_t width = widths[level];
        int64_t offset = 0;
        for (int64_t n : pyramid) {
          bounds.set(w, n);
          const int64_t *xs = bounds.xs, *xe = bounds.xe, *ys = bounds.ys, *ye = bounds.ye;
          for (int64_t c = 0; c < cb; ++c) {
            acc_t* plane = planes + c * cs;
            const scalar_t* gc = g + c * bins + offset;
            for (int64_t i = 0; i < n; ++i) {
              for (int64_t j = 0; j < n; ++j) {
                const acc_t count = static_cast<acc_t>((ye[i] - ys[i] + 1) * (xe[j] - xs[j] + 1));
                const acc_t share = static_cast<acc_t>(gc[i * n + j]) / count;
                for (int64_t y = ys[i]; y <= ye[i]; ++y) {
                  acc_t* line = plane + y * width * cell_step;
                  for (int64_t x = xs[j]; x <= xe[j]; ++x) line[x * cell_step] += share;
                }
              }
            }
          }
          offset += n * n;
        }
      }
    }
  });
}


}  // namespace

std::vector<Tensor> spp_backward(const Tensor& grad_out_in, const Tensor& argmax_in, const Tensor& win,
                                 at::IntArrayRef level_hw, int64_t images, at::IntArrayRef pyramid_in, int64_t mode,
                                 bool channels_last) {
  const bool is_max = check_mode(mode) == kMax;
  const Tensor grad_out = grad_out_in.contiguous();
  const std::vector<int64_t> pyramid = pyramid_in.vec();
  check_win_pyramid(win, pyramid_in);
  BackwardPlanes p = backward_planes(grad_out, argmax_in, level_hw, images, is_max, channels_last);
  const auto dtype = grad_out.scalar_type();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "spp_triton_cpu_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    if (channels_last) {
      backward_impl<scalar_t, acc_t, true>(grad_out, p.argmax, win, p.heights, p.widths, pyramid, is_max, p.grads);
    } else {
      backward_impl<scalar_t, acc_t, false>(grad_out, p.argmax, win, p.heights, p.widths, pyramid, is_max, p.grads);
    }
  });
  return finish(p, dtype);
}

}  // namespace spp_cpu
