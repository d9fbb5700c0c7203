"""The ``vq/`` recipe list says which recipes need an LPIPS weight file: ``diffrep train vq/shapes3d64`` (the
first stage docs/methods/encdiff.md sends a newcomer to train) stopped on the missing file while its line in
``diffrep train --list`` said nothing of it (only vq/celeba64's did)."""

from __future__ import annotations

from diffrep.recipes import get_recipe, list_recipes


def test_every_vq_recipe_with_a_perceptual_term_says_it_needs_lpips_weights():
    names = [r.name for r in list_recipes() if r.name.startswith("vq/")]
    assert {"vq/toy-cpu", "vq/celeba64", "vq/shapes3d64", "vq/mpi3d-toy64", "vq/cars3d64"} <= set(names)
    for name in names:
        recipe = get_recipe(name)
        needs = recipe.make_config().model.perceptual_weight > 0
        assert ("LPIPS" in recipe.description) == needs, (name, recipe.description)
