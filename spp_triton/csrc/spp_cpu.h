// What the CPU kernels of spatial-pyramid RoI pooling share: the mode, the levels, the
// channel blocks, the max rule's coarse-bin derivation. The kernels: spp_cpu_cells.cpp
// (sampling="cells", the paper) and spp_cpu_align.cpp (sampling="bilinear", SPP-Align);
// their registration: spp_cpu_ops.cpp. Built together by spp_triton/cpu_kernel.py.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/OpMathType.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

namespace spp_cpu {

using at::Tensor;

// geometry.Mode: the op schema takes the integer, so a new mode changes no schema.
enum Mode : int64_t { kMax = 0, kAvg = 1 };

inline Mode check_mode(int64_t mode) {
  TORCH_CHECK(mode == kMax || mode == kAvg, "spp_triton_cpu: unknown mode ", mode, " (see geometry.Mode)");
  return static_cast<Mode>(mode);
}

struct Levels {
  std::vector<const void*> data;
  std::vector<int64_t> height, width;
};

// Channels of one work item (a RoI and a block of channels). The inner loops run
// over the block's channels with the layout's channel stride: 1 when channels-last
// (kCL, the loops vectorise), the plane size for NCHW.
template <bool kCL>
constexpr int64_t channel_block() { return kCL ? 256 : 64; }

// Coarse bins of an n x n grid from the fine G x G grid, n | G: bin (p, q) is the
// union of fine bins (p f + a, q f + b), f = G / n. Its winner is the best value,
// ties going to the smallest cell index, i.e. the first in row-major order (fine
// bins may share a row or column, which changes nothing).
template <typename acc_t>
void derive_grid(const acc_t* __restrict__ fine_val, const int32_t* __restrict__ fine_idx, int64_t g, int64_t n,
                 int64_t cb, acc_t* __restrict__ val, int32_t* __restrict__ idx) {
  const int64_t f = g / n;
  for (int64_t p = 0; p < n; ++p) {
    for (int64_t q = 0; q < n; ++q) {
      acc_t* __restrict__ bv = val + (p * n + q) * cb;
      int32_t* __restrict__ bi = idx + (p * n + q) * cb;
      for (int64_t a = 0; a < f; ++a) {
        for (int64_t b = 0; b < f; ++b) {
          const int64_t fb = ((p * f + a) * g + q * f + b) * cb;
          const acc_t* __restrict__ sv = fine_val + fb;
          const int32_t* __restrict__ si = fine_idx + fb;
          if (a == 0 && b == 0) {
            for (int64_t c = 0; c < cb; ++c) {
              bv[c] = sv[c];
              bi[c] = si[c];
            }
            continue;
          }
          for (int64_t c = 0; c < cb; ++c) {
            const acc_t v = sv[c], cur = bv[c];
            const int32_t ci = si[c], cc = bi[c];
            const bool v_nan = v != v, cur_nan = cur != cur;
            const bool tie = (v == cur) | (v_nan & cur_nan);
            const bool up = (v > cur) | (v_nan & !cur_nan) | (tie & (ci < cc));
            bv[c] = up ? v : cur;
            bi[c] = up ? ci : cc;
          }
        }
      }
    }
  }
}

inline Levels collect(const std::vector<Tensor>& feats) {
  Levels lv;
  for (const auto& f : feats) {
    lv.data.push_back(f.data_ptr());
    lv.height.push_back(f.size(2));
    lv.width.push_back(f.size(3));
  }
  return lv;
}

inline std::vector<Tensor> cast_all(const std::vector<Tensor>& ts, at::ScalarType dtype) {
  std::vector<Tensor> out;
  for (const auto& t : ts) out.push_back(t.to(dtype));
  return out;
}

// Backward work items: blocks of this many channels. A block's thread walks the RoIs
// in order, so every (image, channel) plane is written by one thread in a fixed
// order: bit-identical results run to run.
constexpr int64_t kBackwardBlock = 16;

// sampling="cells" (spp_cpu_cells.cpp).
std::tuple<Tensor, Tensor> spp_forward(at::TensorList feats_in, const Tensor& win, at::IntArrayRef pyramid_in,
                                       int64_t fine_grid, int64_t mode, bool channels_last_in);
std::vector<Tensor> spp_backward(const Tensor& grad_out_in, const Tensor& argmax_in, const Tensor& win,
                                 at::IntArrayRef level_hw, int64_t images, at::IntArrayRef pyramid_in, int64_t mode,
                                 bool channels_last);

// sampling="bilinear" (spp_cpu_align.cpp).
std::tuple<Tensor, Tensor> align_forward(at::TensorList feats_in, const Tensor& meta, const Tensor& box,
                                         at::IntArrayRef pyramid, at::IntArrayRef sampled, int64_t fine_grid,
                                         int64_t mode, bool channels_last_in);
std::vector<Tensor> align_backward(const Tensor& grad_out_in, const Tensor& argmax_in, const Tensor& meta,
                                   const Tensor& box, at::IntArrayRef level_hw, int64_t images,
                                   at::IntArrayRef pyramid, at::IntArrayRef sampled, int64_t fine_grid,
                                   int64_t mode, bool channels_last);

}  // namespace spp_cpu
