"""Float weights -> integer symbols (and back), and the rate-aware fitting term that learns the steps.

Knows nothing about entropy coding or files."""
from .quantize import (MIN_STEP, QuantizedTensor, dequantize_state, dequantize_tensor, f16_up, quantize_fixed,
                       quantize_with_step)
from .qat import RateTerm, RateTermConfig, laplace_bits

__all__ = ["QuantizedTensor", "quantize_with_step", "quantize_fixed", "dequantize_tensor", "dequantize_state",
           "f16_up", "MIN_STEP", "RateTerm", "RateTermConfig", "laplace_bits"]
