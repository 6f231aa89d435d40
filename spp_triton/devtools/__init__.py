"""Developer tools, each runnable as ``python -m spp_triton.devtools.<tool>``:

* ``compile_check``: every Triton kernel variant compiled for sm_80 / sm_90 without a GPU;
  registers, spills, occupancy (``make compile-check``, run by ``make test``);
* ``load_counter``: bytes the Triton kernels move, counted in the interpreter (``make traffic``);
* ``selftest``: Triton against the torch backend, and the benchmark, on a GPU (``make selftest``);
* ``workloads``: the realistic inputs that benchmarks, tests and the tools above share.
"""
