"""Export of the operator to other formats: ``onnx_export`` (standard ONNX, exact in ONNX
Runtime; needs the ``[export]`` extra, so it is imported on its own)."""
