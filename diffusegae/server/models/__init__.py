"""The python-backend models the repository's `1/model.py` shims import; each module's TritonPythonModel.

They run inside tritonserver's python stub, where `triton_python_backend_utils` exists: import them only
there (tests put a stand-in module in its place).
"""
