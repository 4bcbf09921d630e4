"""Build-time toolchain for on-device models: needs the ``export`` extra (torch, transformers, onnx).

Nothing on the run-time path imports this package.
"""
