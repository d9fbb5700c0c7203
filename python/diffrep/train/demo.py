"""Moved: the recipe to :mod:`diffrep.recipes.demo`, the model to :mod:`diffrep.methods.toy_ddpm`, the data to
:mod:`diffrep.data.toy_shapes`; old names warn (``diffrep.train`` never imports methods or recipes)."""

from .._deprecation import moved_names

__getattr__ = moved_names(__name__, {
    "DemoConfig": "diffrep.recipes.demo:DemoConfig",
    "ToyShapesConfig": "diffrep.data.toy_shapes:ToyShapesConfig",
    "ToyShapes": "diffrep.data.toy_shapes:ToyShapes",
    "ToyDDPMConfig": "diffrep.methods.toy_ddpm:ToyDDPMConfig",
    "ToyDDPM": "diffrep.methods.toy_ddpm:ToyDDPM",
})
