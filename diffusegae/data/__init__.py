"""Procedural attribute dataset (ilab_20M stand-in) and the GROUP(C, 1) sampler."""

from diffusegae.data.dataset import ATTRIBUTES, AttributeDataset
from diffusegae.data.groups import Group, GroupSampler

__all__ = ["ATTRIBUTES", "AttributeDataset", "Group", "GroupSampler"]
