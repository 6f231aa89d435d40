// Registration of the CPU kernels as torch.ops.spp_triton_cpu.*: the cells ops
// (forward, backward: spp_cpu_cells.cpp) and the bilinear ones (align_forward,
// align_backward: spp_cpu_align.cpp). The mode is geometry.Mode's integer value.
#include <torch/library.h>

#include "spp_cpu.h"

TORCH_LIBRARY(spp_triton_cpu, m) {
  m.def("forward(Tensor[] feats, Tensor win, int[] pyramid, int fine_grid, int mode, bool channels_last) -> "
        "(Tensor, Tensor)");
  m.def("backward(Tensor grad_out, Tensor argmax, Tensor win, int[] level_hw, int images, int[] pyramid, "
        "int mode, bool channels_last) -> Tensor[]");
  m.def("align_forward(Tensor[] feats, Tensor meta, Tensor box, int[] pyramid, int[] sampled, int fine_grid, "
        "int mode, bool channels_last) -> (Tensor, Tensor)");
  m.def("align_backward(Tensor grad_out, Tensor argmax, Tensor meta, Tensor box, int[] level_hw, int images, "
        "int[] pyramid, int[] sampled, int fine_grid, int mode, bool channels_last) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(spp_triton_cpu, CPU, m) {
  m.impl("forward", &spp_cpu::spp_forward);
  m.impl("backward", &spp_cpu::spp_backward);
  m.impl("align_forward", &spp_cpu::align_forward);
  m.impl("align_backward", &spp_cpu::align_backward);
}
