"""The Triton kernels compile for real GPUs (PTX for sm_80 / sm_90), checked on CPU without a GPU.

The interpreter (test_triton_interpret.py) runs the kernels' Python; this is the compiler's half: types of
loop-carried values, reductions, constexpr arithmetic. Each kernel is compiled once, each dtype once.
"""

import importlib.util

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")

VECTORS = {"gamma_ptr": "*fp32", "beta_ptr": "*fp32"}  # the norm's γ, β stay fp32 under autocast
CONSTEXPR = "constexpr"


def _signature(kernel_name: str, dtype: str) -> tuple[dict, dict]:
    p = f"*{dtype}"
    rows = {"ts_ptr": p, "tb_ptr": p, "zs_ptr": p, "zb_ptr": p}
    strides = {"ts_stride": "i32", "tb_stride": "i32", "zs_stride": "i32", "zb_stride": "i32"}
    sizes = {"HW": "i32", "CPG": "i32"}
    blocks = {"BLOCK_C": 4, "BLOCK_HW": 512}
    if kernel_name == "_partial_stats":
        sig = {"x_ptr": p, "part_ptr": "*fp32", **sizes, "SPLIT": "i32"}
        consts = {"TILE": 2048, **blocks}
    else:
        head = {"x_ptr": p, "y_ptr": p} | ({"part_ptr": "*fp32"} if kernel_name == "_split_apply" else {})
        sig = {**head, **VECTORS, **rows, **strides, **sizes, "G": "i32", "eps": "fp32", "SPLIT": "i32"}
        consts = {"SPLIT_POW2": 8} if kernel_name == "_split_apply" else {}
        consts |= {"TILE": 2048, "HAS_ZB": kernel_name == "_fused", "SILU": True, **blocks}
    return sig | dict.fromkeys(consts, CONSTEXPR), consts


@pytest.mark.parametrize(
    "kernel_name,dtype,arch",
    [("_fused", "fp32", 90), ("_partial_stats", "fp16", 80), ("_split_apply", "bf16", 90)],
)
def test_kernel_compiles_to_ptx(kernel_name, dtype, arch):
    import triton

    try:
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
    except ImportError as error:  # the API moved in another triton version
        pytest.skip(f"triton's ahead-of-time API: {error}")
    from diffusegae.kernels import triton_adagn

    if triton_adagn.INTERPRET:
        pytest.skip("TRITON_INTERPRET is set in this process")
    signature, constexprs = _signature(kernel_name, dtype)
    source = ASTSource(fn=getattr(triton_adagn, kernel_name), signature=signature, constexprs=constexprs)
    compiled = triton.compile(
        source, target=GPUTarget("cuda", arch, 32), options={"num_warps": 4, "enable_fp_fusion": True}
    )
    ptx = compiled.asm["ptx"]
    assert f".target sm_{arch}" in ptx and ".entry" in ptx
