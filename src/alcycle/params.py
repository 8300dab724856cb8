"""``params.yaml`` loaded into frozen, typed dataclasses: one section per DVC stage.

An unknown or missing key fails at once with its dotted name, so a typo in
``params.yaml`` never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alcycle.errors import AlcycleError


class ParamsError(AlcycleError, ValueError):
    """``params.yaml`` is missing a key, has an unknown one, or a value of the wrong type."""


@dataclass(frozen=True)
class PrepareParams:
    source: str  # mnist | folder | csv
    path: str  # image folder or CSV manifest for the folder/csv sources
    image_size: int  # every image is resized to image_size x image_size
    channels: int  # 1 = grayscale, 3 = RGB
    test_fraction: float  # share of items held out as the test split
    subsample: int  # keep only this many items, chosen with split_seed (0 = all)
    split_seed: int
    on_unreadable: str = "refuse"  # refuse | skip: images that cannot be decoded


@dataclass(frozen=True)
class LabelImportParams:
    on_conflict: str  # refuse | relabel: what to do when a batch relabels an item
    annotators: str = "majority"  # majority | latest | refuse: several annotators disagree on an item
    choice_name: str = ""  # Label Studio Choices tag to read; "" = the only one in the export


@dataclass(frozen=True)
class PretrainParams:
    method: str  # none | deepcluster | weights
    weights: str  # local path to backbone weights (method: weights)
    epochs: int  # DeepCluster epochs: cluster, then one pass over the images
    clusters: int  # k-means clusters; 0 = 5 × number of classes
    kmeans_iterations: int
    pca: int  # whitened PCA dimensions before k-means; 0 = none
    batch_size: int
    lr: float


@dataclass(frozen=True)
class PretrainVitParams:
    method: str  # none | deepcluster | weights: the vision transformer GEAL selects with
    weights: str  # local torchvision VisionTransformer state dict (method: weights), e.g. DINO
    image_size: int  # images are resized to this for the transformer; 0 = prepare.image_size
    patch_size: int
    hidden_dim: int
    layers: int
    heads: int
    mlp_dim: int
    epochs: int  # self-supervised epochs on the pool (method: deepcluster)
    clusters: int  # k-means clusters; 0 = 5 × number of classes
    batch_size: int
    lr: float


@dataclass(frozen=True)
class LabelPropagationParams:
    k: int  # neighbours in the kNN graph
    gamma: float  # edge weight = similarity ** gamma
    alpha: float  # propagation strength in (I - alpha W) Z = Y
    reciprocal: bool  # keep only mutual kNN edges (else W + W^T)
    iterations: int  # conjugate-gradient iterations
    every: int  # re-propagate every this many training steps


@dataclass(frozen=True)
class CealParams:
    delta: float  # entropy threshold (nats) for a pseudo-label at cycle 1
    decay: float  # the threshold shrinks by this much per cycle
    every: int  # re-assign pseudo-labels every this many training steps


@dataclass(frozen=True)
class LossPredictionParams:
    weight: float  # λ: the ranking loss's weight next to the classification loss
    margin: float  # ξ in the pairwise ranking loss
    detach_after: float  # share of the steps after which the module stops training the backbone


@dataclass(frozen=True)
class TrainParams:
    backbone: str  # small_cnn | resnet18
    init: str  # scratch | pretrained: start each cycle from pretrain's weights
    freeze_backbone: bool  # train only a linear classifier on the backbone's features
    semi_supervised: str  # none | label_propagation | ceal
    steps: int  # optimiser steps per cycle (labels are drawn with replacement)
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    augment: bool  # random translations of up to 2 pixels
    dropout: float  # dropout on the features before the head (MC dropout for BALD needs > 0)
    label_propagation: LabelPropagationParams
    ceal: CealParams
    loss_prediction: LossPredictionParams  # trained only when the strategy needs predicted_loss


@dataclass(frozen=True)
class ExtractParams:
    batch_size: int
    mc_samples: int  # MC-dropout passes written when the model has dropout (for BALD)


@dataclass(frozen=True)
class VaalParams:
    latent_dim: int  # size of the VAE's latent space
    steps: int  # optimiser steps of VAE and discriminator per selection
    batch_size: int
    lr: float
    kl_weight: float  # β on the VAE's KL term
    adversary_weight: float  # weight of the VAE's "fool the discriminator" loss


@dataclass(frozen=True)
class GealParams:
    tau: float  # keep the patches holding this share of the CLS attention mass
    clusters: int  # K knowledge clusters per image
    batch_size: int  # images per transformer forward pass


@dataclass(frozen=True)
class SelectParams:
    strategy: str  # query strategy once the labeled pool is non-empty
    cold_start: str  # strategy for cycle 0, when nothing is labeled yet
    budget: int  # items queried per cycle
    image_url_prefix: str  # Label Studio tasks: an image's URL is this + its path from the project root
    vaal: VaalParams  # VAAL and SRAAL
    geal: GealParams


@dataclass(frozen=True)
class TrackParams:
    experiment: str  # MLflow experiment name
    tracking_uri: str  # "" = $MLFLOW_TRACKING_URI, else sqlite:///<project>/mlflow.db


@dataclass(frozen=True)
class Params:
    seed: int  # seeds training and selection; the split has its own seed
    classes: tuple[str, ...]
    prepare: PrepareParams
    pretrain: PretrainParams
    pretrain_vit: PretrainVitParams
    label_import: LabelImportParams
    train: TrainParams
    extract: ExtractParams
    select: SelectParams
    track: TrackParams


SOURCES = ("mnist", "folder", "csv")
UNREADABLE_RULES = ("refuse", "skip")
PRETRAIN_METHODS = ("none", "deepcluster", "weights")
INITS = ("scratch", "pretrained")
SEMI_SUPERVISED = ("none", "label_propagation", "ceal")
# models.BACKBONES builds these (a test keeps the two in step); named here so that reading
# params.yaml checks them without importing torch.
BACKBONES = ("resnet18", "small_cnn")
CONFLICT_RULES = ("refuse", "relabel")
# Label Studio serves a file under its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT at this URL + its relative path.
LOCAL_FILES_PREFIX = "/data/local-files/?d="
ANNOTATOR_RULES = ("majority", "latest", "refuse")


def load_params(path: Path | str = "params.yaml") -> Params:
    """Load and validate ``params.yaml``."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found; run alcycle in a project folder (see `alcycle init`)") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    return params_from_dict(raw, path)


def params_from_dict(raw: Any, source: Path) -> Params:
    """Validate ``raw`` (params.yaml as loaded by YAML); errors name ``source`` and the key."""
    params = _build(Params, raw, where="", source=source)
    _check(params, source)
    return params


def params_dict(params: Params) -> dict[str, Any]:
    """The parameters as a nested dict of plain values (for logging)."""
    return dataclasses.asdict(params)


def _build(cls: type, raw: Any, where: str, source: Path) -> Any:
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: section '{where or '<top>'}' must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ParamsError(f"{source}: unknown key '{key}'; expected one of: {', '.join(names)}")
    values = {}
    for name in names:
        key = f"{where}.{name}" if where else name
        if name not in raw:
            raise ParamsError(f"{source}: missing key '{key}'")
        values[name] = _coerce(hints[name], raw[name], key, source)
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str, source: Path) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key, source)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list) or not value:
            raise ParamsError(f"{source}: '{key}' must be a non-empty list, got {value!r}")
        return tuple(str(item) for item in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and value is None:
        return ""
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ParamsError(f"{source}: '{key}' must be {hint.__name__}, got {value!r}")
    return value


def _training_choices(params: Params) -> list[str]:
    problems = []
    for key, value, valid in [
        ("pretrain.method", params.pretrain.method, PRETRAIN_METHODS),
        ("train.init", params.train.init, INITS),
        ("train.backbone", params.train.backbone, BACKBONES),
        ("train.semi_supervised", params.train.semi_supervised, SEMI_SUPERVISED),
    ]:
        if value not in valid:
            problems.append(f"'{key}' is {value!r}; choose one of: {', '.join(valid)}")
    if params.pretrain.method == "weights" and not params.pretrain.weights:
        problems.append("'pretrain.weights' is empty; method 'weights' needs a local weights file")
    if params.train.init == "pretrained" and params.pretrain.method == "none":
        problems.append("'train.init' is 'pretrained' but 'pretrain.method' is 'none'")
    if params.train.freeze_backbone and params.train.init != "pretrained":
        problems.append("'train.freeze_backbone' needs 'train.init: pretrained' (frozen random features)")
    if not 0.0 < params.train.label_propagation.alpha < 1.0:
        problems.append("'train.label_propagation.alpha' must be in (0, 1)")
    for key, value in [
        ("pretrain.epochs", params.pretrain.epochs),
        ("pretrain.batch_size", params.pretrain.batch_size),
        ("pretrain.kmeans_iterations", params.pretrain.kmeans_iterations),
        ("train.label_propagation.k", params.train.label_propagation.k),
        ("train.label_propagation.iterations", params.train.label_propagation.iterations),
        ("train.label_propagation.every", params.train.label_propagation.every),
        ("train.ceal.every", params.train.ceal.every),
    ]:
        if value < 1:
            problems.append(f"'{key}' is {value}; it must be at least 1")
    return problems


def _strategy_checks(params: Params) -> list[str]:
    """Unknown strategy names, and inputs a strategy needs that the settings cannot produce,
    fail at load time rather than after a cycle's training."""
    from alcycle.strategies import STRATEGIES, needs

    select = params.select
    chosen = {"strategy": select.strategy, "cold_start": select.cold_start}
    unknown = [key for key, name in chosen.items() if name not in STRATEGIES]
    problems = [f"'select.{key}' is {chosen[key]!r}; choose one of: {', '.join(sorted(STRATEGIES))}"
                for key in unknown]
    for key, name in chosen.items():
        if key in unknown:
            continue
        wanted = needs(name)
        if "mc_probs" in wanted and (params.train.dropout <= 0 or params.extract.mc_samples < 2):
            problems.append(f"'select.{key}' {name!r} needs MC-dropout samples: set 'train.dropout' > 0 "
                            f"and 'extract.mc_samples' >= 2")
        if "vit" in wanted and params.pretrain_vit.method == "none":
            problems.append(f"'select.{key}' {name!r} needs a vision transformer: set 'pretrain_vit.method' "
                            f"to deepcluster or weights")
    return problems


def _selection_settings(params: Params) -> list[str]:
    problems = []
    vit = params.pretrain_vit
    if vit.method not in PRETRAIN_METHODS:
        problems.append(f"'pretrain_vit.method' is {vit.method!r}; choose one of: {', '.join(PRETRAIN_METHODS)}")
    if vit.method == "weights" and not vit.weights:
        problems.append("'pretrain_vit.weights' is empty; method 'weights' needs a local weights file")
    size = vit.image_size or params.prepare.image_size
    if vit.patch_size < 1 or size % vit.patch_size:
        problems.append(f"'pretrain_vit.patch_size' {vit.patch_size} must divide the image size {size}")
    if vit.heads < 1 or vit.hidden_dim % vit.heads:
        problems.append(f"'pretrain_vit.heads' {vit.heads} must divide 'pretrain_vit.hidden_dim' {vit.hidden_dim}")
    if not 0.0 < params.select.geal.tau <= 1.0:
        problems.append(f"'select.geal.tau' is {params.select.geal.tau}; use 0 < tau <= 1")
    vaal = params.select.vaal
    if not vaal.lr > 0.0:
        problems.append(f"'select.vaal.lr' is {vaal.lr}; it must be positive")
    for key, value in [("select.vaal.kl_weight", vaal.kl_weight),
                       ("select.vaal.adversary_weight", vaal.adversary_weight)]:
        if not value >= 0.0:
            problems.append(f"'{key}' is {value}; it must be at least 0")
    if not 0.0 <= params.train.dropout < 1.0:
        problems.append(f"'train.dropout' is {params.train.dropout}; use 0 <= p < 1")
    if not 0.0 <= params.train.loss_prediction.detach_after <= 1.0:
        problems.append("'train.loss_prediction.detach_after' must be a share of the steps, in [0, 1]")
    for key, value in [
        ("pretrain_vit.layers", vit.layers), ("pretrain_vit.hidden_dim", vit.hidden_dim),
        ("pretrain_vit.mlp_dim", vit.mlp_dim), ("pretrain_vit.epochs", vit.epochs),
        ("pretrain_vit.batch_size", vit.batch_size), ("select.geal.clusters", params.select.geal.clusters),
        ("select.geal.batch_size", params.select.geal.batch_size),
        ("select.vaal.latent_dim", params.select.vaal.latent_dim), ("select.vaal.steps", params.select.vaal.steps),
        ("select.vaal.batch_size", params.select.vaal.batch_size),
    ]:
        if value < 1:
            problems.append(f"'{key}' is {value}; it must be at least 1")
    return problems


def _check(params: Params, source: Path) -> None:
    """Cross-field checks that the types alone cannot express."""
    problems = []
    if params.prepare.source not in SOURCES:
        problems.append(f"'prepare.source' is {params.prepare.source!r}; choose one of: {', '.join(SOURCES)}")
    if params.prepare.source != "mnist" and not params.prepare.path:
        problems.append(f"'prepare.path' is empty; source {params.prepare.source!r} needs it")
    if params.prepare.on_unreadable not in UNREADABLE_RULES:
        problems.append(f"'prepare.on_unreadable' is {params.prepare.on_unreadable!r}; "
                        f"choose one of: {', '.join(UNREADABLE_RULES)}")
    if params.prepare.channels not in (1, 3):
        problems.append(f"'prepare.channels' is {params.prepare.channels}; choose 1 or 3")
    if params.prepare.image_size < 8:
        problems.append(f"'prepare.image_size' is {params.prepare.image_size}; use at least 8")
    if not 0.0 <= params.prepare.test_fraction < 1.0:
        problems.append(f"'prepare.test_fraction' is {params.prepare.test_fraction}; use 0 <= x < 1")
    prefix = params.select.image_url_prefix
    if not prefix or any(c.isspace() for c in prefix):
        problems.append(f"'select.image_url_prefix' is {prefix!r}; use a prefix without spaces, such as "
                        f"{LOCAL_FILES_PREFIX!r} (Label Studio's local files) or the URL the project is served at")
    if params.label_import.on_conflict not in CONFLICT_RULES:
        problems.append(
            f"'label_import.on_conflict' is {params.label_import.on_conflict!r}; "
            f"choose one of: {', '.join(CONFLICT_RULES)}"
        )
    if params.label_import.annotators not in ANNOTATOR_RULES:
        problems.append(
            f"'label_import.annotators' is {params.label_import.annotators!r}; "
            f"choose one of: {', '.join(ANNOTATOR_RULES)}"
        )
    problems += _strategy_checks(params)
    problems += _selection_settings(params)
    problems += _training_choices(params)
    if len(set(params.classes)) != len(params.classes):
        problems.append("'classes' lists a class twice")
    for key, value in [
        ("train.steps", params.train.steps),
        ("train.batch_size", params.train.batch_size),
        ("extract.batch_size", params.extract.batch_size),
        ("select.budget", params.select.budget),
    ]:
        if value < 1:
            problems.append(f"'{key}' is {value}; it must be at least 1")
    if problems:
        raise ParamsError(f"{source}: " + "; ".join(problems))
