"""Deployment of a whole trained detector: ``whole_detector`` (one standard ONNX graph, image
in, detections out) and ``nms_op`` (mmcv's batched NMS as a traceable op with its ONNX
translation). Needs the ``[export]`` extra; imported on its own, not by ``mmdet_plugin``."""
