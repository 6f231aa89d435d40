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

// What both backwards take and allocate.
struct BackwardPlanes {
  std::vector<int64_t> heights, widths;  // per level, from the flat (H, W) pairs of level_hw
  Tensor argmax;                         // max mode: contiguous int32 shaped like grad_out
  std::vector<Tensor> grads;             // zeroed planes (N, C, H, W) per level
  bool exact;                            // grads are in grad_out's dtype (float, double)
};

// Checks level_hw and argmax and allocates the gradient planes: in grad_out's dtype for
// float and double (accumulated straight into the outputs), float for half and bfloat16
// (summed in float, rounded once at the end: ``finish``), in the features' layout
// (spp_triton.registry.memory_format).
inline BackwardPlanes backward_planes(const Tensor& grad_out, const Tensor& argmax_in, at::IntArrayRef level_hw,
                                      int64_t images, bool is_max, bool channels_last) {
  TORCH_CHECK(level_hw.size() % 2 == 0 && !level_hw.empty(), "spp_triton_cpu: level_hw holds (H, W) pairs");
  BackwardPlanes out;
  for (size_t i = 0; i < level_hw.size(); i += 2) {
    out.heights.push_back(level_hw[i]);
    out.widths.push_back(level_hw[i + 1]);
  }
  if (is_max) {
    out.argmax = argmax_in.contiguous();
    TORCH_CHECK(out.argmax.scalar_type() == at::kInt && out.argmax.sizes() == grad_out.sizes(),
                "spp_triton_cpu: argmax must be int32 shaped like grad_out");
  }
  const auto dtype = grad_out.scalar_type();
  out.exact = dtype == at::kFloat || dtype == at::kDouble;
  const auto options = grad_out.options().dtype(out.exact ? dtype : at::kFloat).memory_format(
      channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  for (size_t l = 0; l < out.heights.size(); ++l) {
    // at::zeros would drop the options' memory format
    out.grads.push_back(at::empty({images, grad_out.size(1), out.heights[l], out.widths[l]}, options).zero_());
  }
  return out;
}

// The gradients in grad_out's dtype.
inline std::vector<Tensor> finish(const BackwardPlanes& planes, at::ScalarType dtype) {
  return planes.exact ? planes.grads : cast_all(planes.grads, dtype);
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
