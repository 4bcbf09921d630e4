"""On-device embedding: EmbeddingGemma (or any model directory of the same format) over ONNX Runtime.

``embedder`` runs the model (no torch); ``model_dir`` resolves, verifies and downloads model directories.
The build-time toolchain (torch export, graph fusion, int8 quantization, reference embedder) is in ``export``.
"""
