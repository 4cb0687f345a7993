"""The served inversion cache: editing a source again skips its inversion (the metric counts it) and gives
what the in-process pipeline gives; a different step count or sampler is not a hit."""

from __future__ import annotations

from diffusegae.images import to_model, to_uint8

from .serving import assert_same_images, cache_counts, dataset_images


def test_a_source_edited_again_is_not_inverted_again(server, client, pipeline):
    images = dataset_images(4, seed=31)
    source, references = images[:1], images[1:]
    before = cache_counts(server)
    for reference in references:  # one source, three references
        got = client.edit(source, reference[None], swap=["pose"], steps=4)
        want = pipeline.edit(to_model(source), to_model(reference[None]), swap=["pose"], steps=4)
        assert_same_images(got, to_uint8(want))
    after = cache_counts(server)
    assert after["misses"] - before["misses"] == 1 and after["hits"] - before["hits"] == 2
    client.edit(source, references[:1], swap=["pose"], steps=5)  # another step count: inverted anew
    client.edit(source, references[:1], swap=["pose"], steps=4, sampler="dpmpp2m")  # another sampler too
    last = cache_counts(server)
    assert last["misses"] - after["misses"] == 2 and last["hits"] == after["hits"]
