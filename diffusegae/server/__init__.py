"""Serving on Triton Inference Server.

specs.py names every Triton model and tensor (torch-free: the client reads it); graph.py wires the public
ensembles; repository.py writes a model repository (config.pbtxt generated from the specs, model.py shims
that import the python-backend models in `diffusegae.server.models`); launcher.py runs the bundled
tritonserver on CPU or prints the NGC container command. Nothing is imported here, so that reading the specs
stays cheap.
"""
