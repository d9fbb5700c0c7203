"""``save_pretrained`` / ``from_pretrained``: ``config.json`` + ``model.safetensors`` (docs/architecture.md#save-and-load-format).

A model class derives from :class:`PretrainedMixin` and ``nn.Module``, sets ``config_class`` to a
:class:`diffrep.config.Config` dataclass and takes that config as its only constructor argument.
``config.json`` holds the config fields plus ``_class_name`` and ``_diffrep_version``. Weights are
the ``state_dict`` (persistent buffers included); an optional ``ema.safetensors`` holds the EMA copy.

Load policy: missing or unexpected state-dict keys are an error listing them (``strict=True``);
``strict=False`` loads the intersection and returns the lists via ``model._load_report``.

Finding the class of a ``config.json``: diffrep's own model classes are listed in
:data:`MODEL_CLASSES` (class name -> ``"module:attribute"``, imported on first use), so
:func:`load_pretrained` needs no import or registration beforehand; classes defined outside
diffrep join through :func:`register_model`, consulted after the table.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._checks import device as check_device
from .._checks import a_or_an
from .._checks import path as check_path
from ..config import Config, ConfigError, config_from_dict, config_to_dict, with_fields_added

__all__ = ["PretrainedMixin", "register_model", "model_registry", "model_class", "load_pretrained", "MODEL_CLASSES",
           "FOREIGN_LOADERS", "WEIGHTS_CHOICES", "resolve_weights",
           "CONFIG_NAME", "WEIGHTS_NAME", "EMA_WEIGHTS_NAME", "load_safetensors_checked", "load_state_checked"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
EMA_WEIGHTS_NAME = "ema.safetensors"
# what a saved model is read with, everywhere a user chooses (the verbs' --weights, a study's eval.weights):
# auto = the EMA copy when the folder has one, else the raw weights (resolve_weights)
WEIGHTS_CHOICES = ("auto", "ema", "model")

# Every model class diffrep ships, under the name save_pretrained writes as ``_class_name``. The paths
# are strings, imported when a class is needed, so this layer names classes of higher layers without
# importing them. A new model class adds its line (tests/nn/test_pretrained.py round-trips each).
MODEL_CLASSES: dict[str, str] = {
    "UNet": "diffrep.nn.unet:UNet",
    "HalfUNet": "diffrep.nn.encoders:HalfUNet",
    "ConvEncoder": "diffrep.nn.encoders:ConvEncoder",
    "ConvDecoder": "diffrep.nn.encoders:ConvDecoder",
    "FeatureExtractor": "diffrep.nn.encoders:FeatureExtractor",
    "VQAutoencoder": "diffrep.nn.vq:VQAutoencoder",
    "BFN": "diffrep.bfn.model:BFN",
    "ToyDDPM": "diffrep.methods.toy_ddpm:ToyDDPM",
    "ParamReL": "diffrep.methods.paramrel:ParamReL",
    "SAMIConvNet": "diffrep.methods.sami_nets:SAMIConvNet",
    "SAMI": "diffrep.methods.sami:SAMI",
    "MultiBetaVAE": "diffrep.methods.multibeta_vae:MultiBetaVAE",
    "LatentDenoiser": "diffrep.methods.multibeta_denoiser:LatentDenoiser",
    "MultiBeta": "diffrep.methods.multibeta:MultiBeta",
    "AE": "diffrep.methods.vae.vae:AE",
    "VAE": "diffrep.methods.vae.vae:VAE",
    "BetaVAE": "diffrep.methods.vae.vae:BetaVAE",
    "BetaTCVAE": "diffrep.methods.vae.beta_tcvae:BetaTCVAE",
    "FactorVAE": "diffrep.methods.vae.factor_vae:FactorVAE",
    "InfoVAE": "diffrep.methods.vae.info_vae:InfoVAE",
    "DIPVAE": "diffrep.methods.vae.dip_vae:DIPVAE",
    "FSQAE": "diffrep.methods.vae.fsq_ae:FSQAE",
    "DiffAE": "diffrep.methods.diffae:DiffAE",
    "InfoDiffusion": "diffrep.methods.infodiffusion:InfoDiffusion",
    "DisDiff": "diffrep.methods.disdiff:DisDiff",
    "EncDiff": "diffrep.methods.encdiff:EncDiff",
}

_MODELS: dict[str, type] = {}  # classes defined outside diffrep, added by register_model


def _check_model_class(cls, who: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, PretrainedMixin) and issubclass(cls, nn.Module)):
        raise TypeError(f"{who}: {cls!r} must subclass PretrainedMixin and nn.Module")
    if not (isinstance(getattr(cls, "config_class", None), type) and issubclass(cls.config_class, Config)):
        raise TypeError(f"{who}: {cls.__name__}.config_class must be a diffrep.config.Config dataclass")


def register_model(cls: type) -> type:
    """Class decorator: make a model class defined outside diffrep loadable by name from
    ``config.json`` (``load_pretrained``). diffrep's own classes are in :data:`MODEL_CLASSES`;
    decorating one of them changes nothing, and a user class may not take one of their names."""
    _check_model_class(cls, "register_model")
    name = cls.__name__
    if name in MODEL_CLASSES:
        if cls.__module__.split(".")[0] == "diffrep":
            return cls
        raise ValueError(f"register_model: {name} is the name of diffrep's {MODEL_CLASSES[name].replace(':', '.')}; "
                         f"give {cls.__module__}.{name} another name")
    prev = _MODELS.get(name)
    if prev is not None and prev is not cls and prev.__module__ != cls.__module__:
        raise ValueError(f"register_model: a different class named {name} is already registered ({prev.__module__})")
    _MODELS[name] = cls
    return cls


def model_class(name: str) -> type:
    """The model class saved under ``name``: diffrep's (:data:`MODEL_CLASSES`, imported now) or a
    registered one; ValueError for an unknown name."""
    path = MODEL_CLASSES.get(name)
    if path is not None:
        module, _, attr = path.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        _check_model_class(cls, f"MODEL_CLASSES[{name!r}]")
        return cls
    if name in _MODELS:
        return _MODELS[name]
    raise ValueError(f"name: model class {name!r} is neither one of diffrep's nor registered with register_model "
                     f"(known: {', '.join(sorted({*MODEL_CLASSES, *_MODELS}))})")


def model_registry() -> dict[str, type]:
    """Every loadable model class by name: diffrep's (importing their modules) and the registered ones."""
    return {**{name: model_class(name) for name in MODEL_CLASSES}, **_MODELS}


def load_safetensors_checked(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file, turning truncation/corruption into a ValueError naming the file."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    device = check_device(device, "map_location")  # a CUDA device on a CPU machine was blamed on the file
    try:
        return load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors raises SafetensorError / OSError on bad files
        raise ValueError(f"{path} is not a valid safetensors file (truncated or corrupted?): {exc}") from None


def _save_safetensors(state: dict[str, torch.Tensor], path: Path, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    save_file(tensors, str(path), metadata=metadata)


class PretrainedMixin:
    """Mixin giving an ``nn.Module`` with ``self.config`` the diffusers-style save/load contract."""

    config_class: type = Config

    def _init_config(self, config: Any) -> Any:
        """Validate and store the constructor's config (accepts the dataclass or a plain dict)."""
        if isinstance(config, dict):
            config = config_from_dict(self.config_class, config)
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__}: config must be {a_or_an(self.config_class.__name__)} "
                            f"(or a dict of its fields), got {type(config).__name__}")
        self.config = config
        return config

    def save_pretrained(self, directory: str | os.PathLike, *, ema_state: dict[str, torch.Tensor] | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (and ``ema.safetensors`` if given) into ``directory``,
        replacing an earlier model there as a whole (its ``ema.safetensors`` too, when none is given)."""
        from .._version import __version__

        if not isinstance(directory, (str, os.PathLike)) or str(directory) == "":
            raise TypeError(f"directory must be a path (str or os.PathLike), got {directory!r}")
        if ema_state is not None and (not isinstance(ema_state, dict)
                                      or not all(isinstance(v, torch.Tensor) for v in ema_state.values())):
            raise TypeError(f"ema_state must be a state dict of tensors (name -> tensor), got {type(ema_state).__name__}")
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():  # mkdir's bare "[Errno 17] File exists"
            raise FileExistsError(f"save_pretrained: {directory} is a file; give a folder to write the model into")
        directory.mkdir(parents=True, exist_ok=True)
        cfg = {"_class_name": type(self).__name__, "_diffrep_version": __version__, **config_to_dict(self.config)}
        # Saving over an earlier model never leaves a mixture: every file is written under a temporary name
        # first; then config.json (what makes the folder loadable) goes away, the weights are renamed into
        # place, an earlier ema.safetensors is removed when this save has none (--weights auto took it: the
        # EMA copy of another model), and config.json comes back last. A crash leaves a folder without
        # config.json ("not a save_pretrained directory"), never new weights beside an old config or copy.
        staged = {CONFIG_NAME: directory / f".{CONFIG_NAME}.{os.getpid()}.tmp",
                  WEIGHTS_NAME: directory / f".{WEIGHTS_NAME}.{os.getpid()}.tmp"}
        if ema_state is not None:
            staged[EMA_WEIGHTS_NAME] = directory / f".{EMA_WEIGHTS_NAME}.{os.getpid()}.tmp"
        try:
            staged[CONFIG_NAME].write_text(json.dumps(cfg, indent=2, sort_keys=False), encoding="utf-8")
            _save_safetensors(self.state_dict(), staged[WEIGHTS_NAME], {"format": "pt"})
            if ema_state is not None:
                _save_safetensors(ema_state, staged[EMA_WEIGHTS_NAME], {"format": "pt"})
            (directory / CONFIG_NAME).unlink(missing_ok=True)
            os.replace(staged[WEIGHTS_NAME], directory / WEIGHTS_NAME)
            if ema_state is not None:
                os.replace(staged[EMA_WEIGHTS_NAME], directory / EMA_WEIGHTS_NAME)
            else:
                (directory / EMA_WEIGHTS_NAME).unlink(missing_ok=True)
            os.replace(staged[CONFIG_NAME], directory / CONFIG_NAME)
        finally:
            for tmp in staged.values():
                tmp.unlink(missing_ok=True)
        return directory

    @classmethod
    def read_config(cls, directory: str | os.PathLike) -> tuple[str, dict]:
        if not isinstance(directory, (str, os.PathLike)):
            raise TypeError(f"directory must be a path (str or os.PathLike), got {type(directory).__name__}")
        path = Path(directory) / CONFIG_NAME
        if not path.is_file():
            # a run folder (what 'diffrep train' and Trainer print) holds the model in final/: say so
            hint = (f"; {directory} is a run folder: load its final/ ({Path(directory) / 'final'})"
                    if (Path(directory) / "final" / CONFIG_NAME).is_file() else "")
            raise FileNotFoundError(f"{path} not found: not a save_pretrained directory{hint}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON (truncated or corrupted?): {exc}") from None
        except UnicodeDecodeError:
            raise ValueError(f"{path} is not a UTF-8 text file (corrupted?)") from None
        if not isinstance(data, dict) or "_class_name" not in data:
            raise ValueError(f"{path}: missing '_class_name'; not written by diffrep save_pretrained")
        name = data["_class_name"]
        if not isinstance(name, str) or not name:
            raise ValueError(f"{path}: '_class_name' must be a class name (a non-empty string), got {name!r}")
        return name, data

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, *, weights: str = "model", strict: bool = True,
                        map_location: str | torch.device = "cpu"):
        """Rebuild the model from ``directory`` (offline). ``weights`` = ``"model"`` or ``"ema"``.
        A config.json whose fields do not fit the class raises :class:`~diffrep.config.ConfigError`
        naming the field and the file."""
        if weights not in ("model", "ema"):
            raise ValueError(f"weights must be 'model' or 'ema', got {weights!r}")
        if not isinstance(strict, bool):
            raise TypeError(f"strict must be a bool, got {type(strict).__name__} {strict!r}")
        name, data = cls.read_config(directory)
        target = cls
        if cls is PretrainedMixin or name != cls.__name__:
            try:
                target = model_class(name)
            except ValueError as exc:
                raise ValueError(f"{directory}: config is for class {name!r}: {exc}") from None
            if not issubclass(target, cls):
                raise ValueError(f"{directory}: config is for {name}, which is not {a_or_an(cls.__name__)}")
        data = with_fields_added(target.config_class, data)  # an older file: the values its weights were trained with
        try:
            config = config_from_dict(target.config_class, data, ignore_private=True)
        except ConfigError as exc:  # an edited or newer config.json: say which file
            raise ConfigError(exc.field, f"{exc.message} (in {Path(directory) / CONFIG_NAME})") from None
        model = target(config)
        fname = WEIGHTS_NAME if weights == "model" else EMA_WEIGHTS_NAME
        state = load_safetensors_checked(Path(directory) / fname, map_location)
        model._load_report = load_state_checked(model, state, Path(directory) / fname, strict=strict)
        return model.to(map_location)


def load_state_checked(model: nn.Module, state: dict, source, *, strict: bool = True) -> dict:
    """``load_state_dict`` whose failures (shape mismatch; with ``strict``, missing/unexpected keys)
    raise ValueError naming ``source``; returns the missing and unexpected key lists."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ValueError(f"{source}: weights do not match {type(model).__name__}: {exc}") from None
    if strict and (missing or unexpected):
        raise ValueError(f"{source}: state dict does not match {type(model).__name__}: "
                         f"missing keys {list(missing)[:10]}, unexpected keys {list(unexpected)[:10]}")
    return {"missing": list(missing), "unexpected": list(unexpected)}


# Folders written by other libraries that diffrep imports, by the ``_class_name`` of their config.json
# (with ``_diffusers_version``): "module:function" taking (directory, map_location=...).
FOREIGN_LOADERS: dict[str, str] = {
    "UNet2DModel": "diffrep.nn.diffusers_unet:load_diffusers_unet",
}


def _foreign_loader(directory: str | os.PathLike):
    path = Path(directory) / CONFIG_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(data, dict) and "_diffusers_version" in data and data.get("_class_name") in FOREIGN_LOADERS:
        module, _, attr = FOREIGN_LOADERS[data["_class_name"]].partition(":")
        return getattr(importlib.import_module(module), attr)
    return None


def load_pretrained(directory: str | os.PathLike, **kwargs) -> nn.Module:
    """Load any model from a ``save_pretrained`` directory, its class read from config.json
    (:data:`MODEL_CLASSES`, then the classes added with :func:`register_model`). A diffusers
    ``UNet2DModel`` folder (:data:`FOREIGN_LOADERS`) loads as diffrep's U-Net
    (:func:`diffrep.nn.diffusers_unet.load_diffusers_unet`); it has no EMA copy (``weights="ema"`` is an error)."""
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"directory must be a path (str or os.PathLike), got {type(directory).__name__}")
    loader = _foreign_loader(directory)
    if loader is not None:
        if kwargs.get("weights", "model") != "model":
            raise FileNotFoundError(f"{directory} is a diffusers folder: it holds one set of weights, no "
                                    f"{EMA_WEIGHTS_NAME}; use weights='model'")
        return loader(directory, map_location=kwargs.get("map_location", "cpu"))
    return PretrainedMixin.from_pretrained.__func__(PretrainedMixin, directory, **kwargs)


def resolve_weights(model_dir: str | os.PathLike, weights: str, verb: str = "diffrep", *, flag: str = "--weights") -> str:
    """The weights to read from ``model_dir``: ``auto`` -> ``ema`` when ``ema.safetensors`` is there, else
    ``model`` (said on stderr, prefixed with ``verb``); ``ema`` without an EMA copy is an error. ``flag``
    names the setting in messages (``--weights`` on the command line, ``eval.weights`` in a study)."""
    for name, text in (("verb", verb), ("flag", flag)):
        if not isinstance(text, str):
            raise TypeError(f"resolve_weights: {name} must be a str, got {type(text).__name__} {text!r}")
    folder = check_path(model_dir, "model_dir")
    if weights not in WEIGHTS_CHOICES:
        raise ValueError(f"{flag} must be auto, ema or model, got {weights!r}")
    if not folder.is_dir():  # auto said "no EMA weights" of a folder that is not there
        raise FileNotFoundError(f"model_dir {str(model_dir)!r} is not a folder (a save_pretrained directory)")
    has_ema = (folder / EMA_WEIGHTS_NAME).is_file()
    if weights == "ema" and not has_ema:
        raise FileNotFoundError(f"{model_dir} has no {EMA_WEIGHTS_NAME}; use {flag} model (or auto)")
    if weights == "auto":
        if has_ema:
            return "ema"
        # a folder without any weights file: the loader's "not found" is the one message, not this note first
        if any(folder.glob("*.safetensors")) or any(folder.glob("*.bin")):
            print(f"{verb}: {model_dir} has no EMA weights; using the raw weights", file=sys.stderr)
        return "model"
    return weights
