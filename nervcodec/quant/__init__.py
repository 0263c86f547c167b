"""Float weights -> integer symbols (and back).  Knows nothing about entropy coding or files."""
from .quantize import QuantizedTensor, quantize_auto, quantize_tensor, dequantize_tensor, quantize_state, dequantize_state

__all__ = ["QuantizedTensor", "quantize_auto", "quantize_tensor", "dequantize_tensor", "quantize_state", "dequantize_state"]
