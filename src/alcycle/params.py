"""``params.yaml`` loaded into frozen, typed dataclasses: one section per DVC stage.

An unknown or missing key fails at once with its dotted name, so a typo in
``params.yaml`` never silently falls back to a default; the one exception is a key that
a later alcycle added (``ADDED_LATER``), which an older project gets with the value that
keeps its behaviour. Each section checks its own values (``problems``), taking the valid
choices from the registry that implements them (sources, strategies, backbones, ...);
``Params.problems`` adds the checks that span sections.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from alcycle.backbones import BACKBONES
from alcycle.errors import ParamsError
from alcycle.methods import PRETRAIN, PRETRAIN_VIT, SEMI_SUPERVISED
from alcycle.registry import Registry
from alcycle.synthesised import UNRECOGNISABLE


UNREADABLE_RULES = ("refuse", "skip")
INITS = ("scratch", "pretrained")
CONFLICT_RULES = ("refuse", "relabel")
KNN_SEARCHES = ("exact", "ivf", "ivfpq")  # propagation.Search
ANNOTATOR_RULES = ("majority", "latest", "refuse")
GAN_METHODS = ("none", "dcgan", "wgan_gp")  # alcycle.gan builds the last two
GAN_FEATURES = ("pca", "discriminator")  # alcycle.gan.TrainedGan.features
# Label Studio serves a file under its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT at this URL + its relative path.
LOCAL_FILES_PREFIX = "/data/local-files/?d="


def _choice(key: str, value: str, valid: Registry | tuple[str, ...]) -> list[str]:
    """A problem when ``value`` is not one of ``valid`` (a registry's names, or fixed choices)."""
    names = valid.names if isinstance(valid, Registry) else valid
    return [] if value in names else [f"'{key}' is {value!r}; choose one of: {', '.join(names)}"]


def _at_least_one(**values: int) -> list[str]:
    """A problem for each count below 1; keyword names are the dotted keys with ``__`` for ``.``."""
    return [f"'{name.replace('__', '.')}' is {value}; it must be at least 1"
            for name, value in values.items() if value < 1]


def _sections(params: Any) -> list[str]:
    """The problems of every nested section of ``params``."""
    return [problem for f in dataclasses.fields(params)
            if hasattr(value := getattr(params, f.name), "problems") for problem in value.problems()]


@dataclass(frozen=True)
class PrepareParams:
    source: str  # mnist | folder | csv | fashion_mnist
    path: str  # image folder or CSV manifest for the folder/csv sources; fashion_mnist: "" = Debian's
    image_size: int  # every image is resized to image_size x image_size
    channels: int  # 1 = grayscale, 3 = RGB
    test_fraction: float  # share of items held out as the test split
    subsample: int  # keep only this many items, chosen with split_seed (0 = all)
    split_seed: int
    on_unreadable: str = "refuse"  # refuse | skip: images that cannot be decoded

    def problems(self) -> list[str]:
        from alcycle.sources import NO_PATH_NEEDED, SOURCES

        found = _choice("prepare.source", self.source, SOURCES)
        found += _choice("prepare.on_unreadable", self.on_unreadable, UNREADABLE_RULES)
        if self.source not in NO_PATH_NEEDED and not self.path:
            found.append(f"'prepare.path' is empty; source {self.source!r} needs it")
        if self.channels not in (1, 3):
            found.append(f"'prepare.channels' is {self.channels}; choose 1 or 3")
        if self.image_size < 8:
            found.append(f"'prepare.image_size' is {self.image_size}; use at least 8")
        if not 0.0 <= self.test_fraction < 1.0:
            found.append(f"'prepare.test_fraction' is {self.test_fraction}; use 0 <= x < 1")
        return found


@dataclass(frozen=True)
class LabelImportParams:
    on_conflict: str  # refuse | relabel: what to do when a batch relabels an item
    annotators: str = "majority"  # majority | latest | refuse: several annotators disagree on an item
    choice_name: str = ""  # Label Studio Choices tag to read; "" = the only one in the export

    def problems(self) -> list[str]:
        return (_choice("label_import.on_conflict", self.on_conflict, CONFLICT_RULES)
                + _choice("label_import.annotators", self.annotators, ANNOTATOR_RULES))


@dataclass(frozen=True)
class SimCLRParams:
    epochs: int  # passes over the pool
    batch_size: int  # images per step; each has two views, and the other 2B − 2 are its negatives
    lr: float  # AdamW, warmed up over 10% of the steps, then a cosine to 0
    temperature: float  # τ of NT-Xent
    projection_dim: int  # output of the 2-layer projection head (discarded after training)
    min_scale: float  # random resized crop: smallest share of the image's area
    jitter: float  # colour distortion strength (brightness, contrast; saturation and hue on RGB); 0 = none
    blur: bool  # Gaussian blur on half of the views
    flip: bool  # horizontal flips

    def problems(self) -> list[str]:
        found = _at_least_one(pretrain__simclr__epochs=self.epochs,
                              pretrain__simclr__projection_dim=self.projection_dim)
        if self.batch_size < 2:
            found.append(f"'pretrain.simclr.batch_size' is {self.batch_size}; use at least 2 (a view needs negatives)")
        for key, value in [("lr", self.lr), ("temperature", self.temperature)]:
            if value <= 0:
                found.append(f"'pretrain.simclr.{key}' is {value}; it must be above 0")
        if not 0.0 < self.min_scale <= 1.0:
            found.append(f"'pretrain.simclr.min_scale' is {self.min_scale}; use 0 < x <= 1")
        if self.jitter < 0:
            found.append(f"'pretrain.simclr.jitter' is {self.jitter}; use 0 (none) or more")
        return found


@dataclass(frozen=True)
class PretrainParams:
    method: str  # none | deepcluster | simclr | weights
    weights: str  # local path to backbone weights (method: weights)
    epochs: int  # DeepCluster epochs: cluster, then one pass over the images
    clusters: int  # k-means clusters; 0 = 5 × number of classes
    kmeans_iterations: int
    pca: int  # whitened PCA dimensions before k-means; 0 = none
    batch_size: int
    lr: float
    simclr: SimCLRParams  # method: simclr

    def problems(self) -> list[str]:
        found = _choice("pretrain.method", self.method, PRETRAIN)
        if self.method == "weights" and not self.weights:
            found.append("'pretrain.weights' is empty; method 'weights' needs a local weights file")
        return found + _at_least_one(pretrain__epochs=self.epochs, pretrain__batch_size=self.batch_size,
                                     pretrain__kmeans_iterations=self.kmeans_iterations) + _sections(self)


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

    def problems(self) -> list[str]:
        found = _choice("pretrain_vit.method", self.method, PRETRAIN_VIT)
        if self.method == "weights" and not self.weights:
            found.append("'pretrain_vit.weights' is empty; method 'weights' needs a local weights file")
        if self.heads < 1 or self.hidden_dim % self.heads:
            found.append(f"'pretrain_vit.heads' {self.heads} must divide 'pretrain_vit.hidden_dim' {self.hidden_dim}")
        return found + _at_least_one(
            pretrain_vit__layers=self.layers, pretrain_vit__hidden_dim=self.hidden_dim,
            pretrain_vit__mlp_dim=self.mlp_dim, pretrain_vit__epochs=self.epochs,
            pretrain_vit__batch_size=self.batch_size)


@dataclass(frozen=True)
class GanParams:
    method: str  # none | dcgan | wgan_gp: the GAN ASAL and GAAL search, learned from the pool without labels
    latent_dim: int  # d: the generator's input z ~ N(0, I_d)
    width: int  # w: channels of the discriminator's first convolution (the generator starts at 4w)
    steps: int  # discriminator (critic) updates; wgan_gp updates the generator every fifth
    batch_size: int
    lr: float  # Adam's learning rate for both networks (DCGAN: 2e-4, WGAN-GP: 1e-4)
    features: str  # pca | discriminator: where ASAL matches generated images to pool images
    pca_dim: int  # principal components kept (features: pca)

    def problems(self) -> list[str]:
        found = _choice("gan.method", self.method, GAN_METHODS) + _choice("gan.features", self.features, GAN_FEATURES)
        if self.lr <= 0:
            found.append(f"'gan.lr' is {self.lr}; it must be above 0")
        if self.batch_size < 2:
            found.append(f"'gan.batch_size' is {self.batch_size}; use at least 2 (batch norm needs two images)")
        return found + _at_least_one(gan__latent_dim=self.latent_dim, gan__width=self.width, gan__steps=self.steps,
                                     gan__pca_dim=self.pca_dim)


@dataclass(frozen=True)
class LabelPropagationParams:
    k: int  # neighbours in the kNN graph
    gamma: float  # edge weight = similarity ** gamma
    alpha: float  # propagation strength in (I - alpha W) Z = Y
    reciprocal: bool  # keep only mutual kNN edges (else W + W^T)
    iterations: int  # conjugate-gradient iterations
    every: int  # re-propagate every this many training steps
    search: str = "exact"  # exact | ivf | ivfpq: how the kNN graph finds neighbours (ivf, ivfpq: approximate)
    nlist: int = 0  # ivf, ivfpq: inverted-file cells; 0 = 4·√N
    nprobe: int = 16  # ivf, ivfpq: cells each item searches (nprobe = nlist is exact for ivf)
    pq_m: int = 0  # ivfpq: bytes per item (sub-vectors of the product quantiser); 0 = D/4

    def problems(self) -> list[str]:
        found = [] if 0.0 < self.alpha < 1.0 else ["'train.label_propagation.alpha' must be in (0, 1)"]
        found += _choice("train.label_propagation.search", self.search, KNN_SEARCHES)
        if self.nlist < 0:
            found.append(f"'train.label_propagation.nlist' is {self.nlist}; use 0 (4·√N) or a cell count")
        if self.pq_m < 0:
            found.append(f"'train.label_propagation.pq_m' is {self.pq_m}; use 0 (D/4) or a divisor of D")
        return found + _at_least_one(train__label_propagation__nprobe=self.nprobe,
                                     train__label_propagation__k=self.k,
                                     train__label_propagation__iterations=self.iterations,
                                     train__label_propagation__every=self.every)


@dataclass(frozen=True)
class CealParams:
    delta: float  # entropy threshold (nats) for a pseudo-label at cycle 1
    decay: float  # the threshold shrinks by this much per cycle
    every: int  # re-assign pseudo-labels every this many training steps

    def problems(self) -> list[str]:
        return _at_least_one(train__ceal__every=self.every)


@dataclass(frozen=True)
class FixMatchParams:
    threshold: float  # a pool item trains on its weak view's class only when that class's probability >= this
    unlabeled_weight: float  # λ_u: the unlabeled loss's weight next to the labeled one
    mu: int  # unlabeled items per step = mu × train.batch_size, each seen weak and strong
    flip: bool  # weak view: also a random horizontal flip (not for digits: a flip changes their meaning)

    def problems(self) -> list[str]:
        found = [] if 0.0 < self.threshold <= 1.0 else [
            f"'train.fixmatch.threshold' is {self.threshold}; use 0 < threshold <= 1"]
        if not self.unlabeled_weight >= 0.0:
            found.append(f"'train.fixmatch.unlabeled_weight' is {self.unlabeled_weight}; it must be at least 0")
        return found + _at_least_one(train__fixmatch__mu=self.mu)


@dataclass(frozen=True)
class LossPredictionParams:
    fit: bool  # train a loss prediction module beside the classifier (learning_loss reads it)
    weight: float  # λ: the ranking loss's weight next to the classification loss
    margin: float  # ξ in the pairwise ranking loss
    detach_after: float  # share of the steps after which the module stops training the backbone

    def problems(self) -> list[str]:
        if 0.0 <= self.detach_after <= 1.0:
            return []
        return ["'train.loss_prediction.detach_after' must be a share of the steps, in [0, 1]"]


@dataclass(frozen=True)
class BgadlParams:
    variants: int  # generated variants of each labeled image added to training; 0 = off
    steps: int  # VAE-ACGAN updates per cycle, on the labeled images
    latent_dim: int
    width: int  # channels of the first convolution of the encoder and discriminator
    batch_size: int
    lr: float  # Adam, all three networks
    kl_weight: float
    reconstruction_weight: float  # weight of the mean squared reconstruction error

    def problems(self) -> list[str]:
        found = [] if self.variants >= 0 else [f"'train.bgadl.variants' is {self.variants}; use 0 (off) or more"]
        if self.batch_size < 2:
            found.append(f"'train.bgadl.batch_size' is {self.batch_size}; use at least 2 (batch norm needs two images)")
        for key, value in [("lr", self.lr), ("kl_weight", self.kl_weight),
                           ("reconstruction_weight", self.reconstruction_weight)]:
            if value < 0 or (key == "lr" and value == 0):
                found.append(f"'train.bgadl.{key}' is {value}; it must be {'above' if key == 'lr' else 'at least'} 0")
        return found + _at_least_one(train__bgadl__steps=self.steps, train__bgadl__latent_dim=self.latent_dim,
                                     train__bgadl__width=self.width)


@dataclass(frozen=True)
class TrainParams:
    backbone: str  # small_cnn | resnet18
    init: str  # scratch | pretrained: start each cycle from pretrain's weights
    freeze_backbone: bool  # train only a linear classifier on the backbone's features
    semi_supervised: str  # none | label_propagation | ceal | fixmatch
    steps: int  # optimiser steps per cycle (labels are drawn with replacement)
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    augment: bool  # random translations of up to 2 pixels
    dropout: float  # dropout on the features before the head (MC dropout for BALD needs > 0)
    label_propagation: LabelPropagationParams
    ceal: CealParams
    loss_prediction: LossPredictionParams
    fixmatch: FixMatchParams
    bgadl: BgadlParams

    def problems(self) -> list[str]:
        found = (_choice("train.backbone", self.backbone, BACKBONES) + _choice("train.init", self.init, INITS)
                 + _choice("train.semi_supervised", self.semi_supervised, SEMI_SUPERVISED))
        if self.freeze_backbone and self.init != "pretrained":
            found.append("'train.freeze_backbone' needs 'train.init: pretrained' (frozen random features)")
        if self.freeze_backbone and self.augment:
            found.append("'train.augment' cannot apply with 'train.freeze_backbone': the frozen features are "
                         "computed once, from the unshifted images; set 'train.augment: false'")
        if self.freeze_backbone and self.loss_prediction.fit:
            found.append("'train.loss_prediction.fit' needs the backbone's feature maps, which a frozen backbone "
                         "never computes while training; set 'train.freeze_backbone: false' or 'fit: false'")
        if self.freeze_backbone and self.semi_supervised == "fixmatch":
            found.append("'train.semi_supervised: fixmatch' needs the backbone to see each augmented view, which "
                         "'train.freeze_backbone' never runs while training (the head trains on cached features); "
                         "set 'train.freeze_backbone: false' or choose another 'train.semi_supervised'")
        if self.freeze_backbone and self.bgadl.variants:
            found.append("'train.bgadl.variants' adds generated images, which a frozen backbone (whose features "
                         "are computed once, for the pool) never sees; set 'train.freeze_backbone: false' or "
                         "'variants: 0'")
        if not 0.0 <= self.dropout < 1.0:
            found.append(f"'train.dropout' is {self.dropout}; use 0 <= p < 1")
        return found + _at_least_one(train__steps=self.steps, train__batch_size=self.batch_size) + _sections(self)


@dataclass(frozen=True)
class ExtractParams:
    batch_size: int
    mc_samples: int  # MC-dropout passes written when the model has dropout (for BALD)

    def problems(self) -> list[str]:
        return _at_least_one(extract__batch_size=self.batch_size)


@dataclass(frozen=True)
class VaalParams:
    latent_dim: int  # size of the VAE's latent space
    steps: int  # optimiser steps of VAE and discriminator per selection
    batch_size: int
    lr: float
    kl_weight: float  # β on the VAE's KL term
    adversary_weight: float  # weight of the VAE's "fool the discriminator" loss

    def problems(self) -> list[str]:
        found = [] if self.lr > 0.0 else [f"'select.vaal.lr' is {self.lr}; it must be positive"]
        found += [f"'select.vaal.{key}' is {value}; it must be at least 0"
                  for key, value in [("kl_weight", self.kl_weight), ("adversary_weight", self.adversary_weight)]
                  if not value >= 0.0]
        return found + _at_least_one(select__vaal__latent_dim=self.latent_dim, select__vaal__steps=self.steps,
                                     select__vaal__batch_size=self.batch_size)


@dataclass(frozen=True)
class GealParams:
    tau: float  # keep the patches holding this share of the CLS attention mass
    clusters: int  # K knowledge clusters per image
    batch_size: int  # images per transformer forward pass

    def problems(self) -> list[str]:
        found = [] if 0.0 < self.tau <= 1.0 else [f"'select.geal.tau' is {self.tau}; use 0 < tau <= 1"]
        return found + _at_least_one(select__geal__clusters=self.clusters, select__geal__batch_size=self.batch_size)


@dataclass(frozen=True)
class ProbCoverParams:
    delta: float  # ball radius on L2-normalised embeddings; 0 = from the purity criterion
    alpha: float  # purity the chosen radius keeps, when delta is 0
    clusters: int  # k-means clusters for the purity; 0 = the number of classes
    search: str = "exact"  # exact | ivfpq (approximate, compressed: for pools of 10^7 and more)

    def problems(self) -> list[str]:
        found = [] if self.delta >= 0 else [f"'select.probcover.delta' is {self.delta}; use 0 (from alpha) or a radius > 0"]
        from alcycle.candidates import SEARCHES

        found += _choice("select.probcover.search", self.search, SEARCHES)
        if not 0.0 < self.alpha <= 1.0:
            found.append(f"'select.probcover.alpha' is {self.alpha}; use 0 < alpha <= 1")
        if self.clusters < 0:
            found.append(f"'select.probcover.clusters' is {self.clusters}; use 0 (the number of classes) or more")
        return found


@dataclass(frozen=True)
class TypiclustParams:
    search: str  # exact | ivfpq: the typicality neighbours inside the big clusters (10^7 and more)

    def problems(self) -> list[str]:
        from alcycle.candidates import SEARCHES

        return _choice("select.typiclust.search", self.search, SEARCHES)


@dataclass(frozen=True)
class AsalParams:
    candidates: int  # latent vectors searched per queried item; the most uncertain budget of them are matched
    steps: int  # Adam steps of entropy ascent in the latent space
    lr: float  # their learning rate

    def problems(self) -> list[str]:
        found = _at_least_one(select__asal__candidates=self.candidates, select__asal__steps=self.steps)
        return found + ([f"'select.asal.lr' is {self.lr}; it must be above 0"] if self.lr <= 0 else [])


GAAL_OBJECTIVES = ("margin", "entropy")  # alcycle.strategies.gaal.OBJECTIVES


@dataclass(frozen=True)
class GaalParams:
    objective: str  # margin | entropy: what the latent search raises (1 - (p1 - p2), or the entropy)
    candidates: int  # latent vectors searched per queried image; the most uncertain budget of them are asked
    steps: int  # Adam steps of gradient ascent in the latent space
    lr: float  # their learning rate

    def problems(self) -> list[str]:
        found = (_choice("select.gaal.objective", self.objective, GAAL_OBJECTIVES)
                 + _at_least_one(select__gaal__candidates=self.candidates, select__gaal__steps=self.steps))
        return found + ([f"'select.gaal.lr' is {self.lr}; it must be above 0"] if self.lr <= 0 else [])


STREAM_MANAGERS = ("variable_uncertainty", "split")  # alcycle.stream.decide: split = a random share first
STREAM_ORDERS = ("manifest", "time", "random")


@dataclass(frozen=True)
class StreamParams:
    window: int  # arrivals met per cycle; 0 = pool-based selection by select.strategy (the default)
    order: str  # manifest | time | random: the order items arrive in (time: the csv source's 'time' column)
    manager: str  # variable_uncertainty | split (Žliobaitė et al. 2014)
    budget: float  # share of the items met that may be labeled, at every point of the stream
    step: float  # s: the threshold shrinks by (1 - s) after a label, grows by (1 + s) after a let-go
    random_share: float  # split: share of arrivals labeled at random

    def problems(self) -> list[str]:
        found = (_choice("select.stream.manager", self.manager, STREAM_MANAGERS)
                 + _choice("select.stream.order", self.order, STREAM_ORDERS))
        if self.window < 0:
            found.append(f"'select.stream.window' is {self.window}; use 0 (pool-based) or a number of arrivals")
        if not 0.0 < self.budget <= 1.0:
            found.append(f"'select.stream.budget' is {self.budget}; use a share 0 < b <= 1")
        elif self.window and self.budget * self.window < 1:
            found.append(f"'select.stream.budget' {self.budget} × 'select.stream.window' {self.window} is below 1: "
                         f"a window could never label an item")
        if not 0.0 < self.step < 1.0:
            found.append(f"'select.stream.step' is {self.step}; use 0 < s < 1")
        if not 0.0 <= self.random_share <= 1.0:
            found.append(f"'select.stream.random_share' is {self.random_share}; use a share 0 <= x <= 1")
        return found


@dataclass(frozen=True)
class CandidatesParams:
    method: str  # all | random | seals: which unlabeled pool items the strategy scores
    size: int  # unlabeled items the strategy scores (random, seals)
    k: int  # seals: nearest unlabeled neighbours of each labeled item
    search: str = "exact"  # seals: exact | ivfpq (approximate, compressed: for pools of 10^7 and more)

    def problems(self) -> list[str]:
        from alcycle.candidates import METHODS, SEARCHES

        return (_choice("select.candidates.method", self.method, METHODS)
                + _choice("select.candidates.search", self.search, SEARCHES)
                + _at_least_one(select__candidates__size=self.size, select__candidates__k=self.k))


@dataclass(frozen=True)
class SelectParams:
    strategy: str  # query strategy once the labeled pool is non-empty
    cold_start: str  # strategy for cycle 0, when nothing is labeled yet
    budget: int  # items queried per cycle
    image_url_prefix: str  # Label Studio tasks: an image's URL is this + its path from the project root
    candidates: CandidatesParams  # the subset of the unlabeled pool a strategy scores
    vaal: VaalParams  # VAAL and SRAAL
    geal: GealParams
    probcover: ProbCoverParams
    typiclust: TypiclustParams
    asal: AsalParams
    gaal: GaalParams
    stream: StreamParams

    def problems(self) -> list[str]:
        from alcycle.strategies import STRATEGIES

        found = [f"'select.{key}' is {name!r}; choose one of: {', '.join(sorted(STRATEGIES))}"
                 for key, name in [("strategy", self.strategy), ("cold_start", self.cold_start)]
                 if name not in STRATEGIES]
        if not self.image_url_prefix or any(c.isspace() for c in self.image_url_prefix):
            found.append(f"'select.image_url_prefix' is {self.image_url_prefix!r}; use a prefix without spaces, "
                         f"such as {LOCAL_FILES_PREFIX!r} (Label Studio's local files) or the URL the project is "
                         f"served at")
        return found + _at_least_one(select__budget=self.budget) + _sections(self)


# Lightning's values that alcycle's tests run; any other Lightning takes is refused until tested here.
ACCELERATORS = ("auto", "cpu", "gpu")
STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_true")
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")


@dataclass(frozen=True)
class ComputeParams:
    accelerator: str  # auto | cpu | gpu: Lightning's accelerator (auto: a GPU where there is one)
    devices: int  # processes per node: GPUs, or CPU processes (gloo) on a machine without one
    num_nodes: int  # machines; each runs the stage with its NODE_RANK (docs/scaling.md)
    strategy: str  # auto | ddp | ddp_find_unused_parameters_true: Lightning's strategy
    precision: str  # 32-true | 16-mixed | bf16-mixed: Lightning's precision
    ray_address: str = ""  # a Ray cluster for extract, embed and campaign cells; "" = $RAY_ADDRESS, else none

    def problems(self) -> list[str]:
        found = (_choice("compute.accelerator", self.accelerator, ACCELERATORS)
                 + _choice("compute.strategy", self.strategy, STRATEGIES)
                 + _choice("compute.precision", self.precision, PRECISIONS))
        if self.precision == "16-mixed" and self.accelerator == "cpu":
            found.append("'compute.precision' 16-mixed needs a GPU ('compute.accelerator' gpu or auto); "
                         "on CPUs use bf16-mixed or 32-true")
        return found + _at_least_one(compute__devices=self.devices, compute__num_nodes=self.num_nodes)


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
    gan: GanParams
    label_import: LabelImportParams
    train: TrainParams
    extract: ExtractParams
    select: SelectParams
    compute: ComputeParams
    track: TrackParams

    def problems(self) -> list[str]:
        """Every section's own problems, then the ones that span sections."""
        found = ["'classes' lists a class twice"] if len(set(self.classes)) != len(self.classes) else []
        if UNRECOGNISABLE in self.classes:
            found.append(f"'classes' lists {UNRECOGNISABLE!r}, the answer an annotator gives a synthesised image "
                         f"that shows no class (GAAL); rename that class")
        found += _sections(self)
        if self.train.init == "pretrained" and self.pretrain.method == "none":
            found.append("'train.init' is 'pretrained' but 'pretrain.method' is 'none'")
        vit = self.pretrain_vit
        size = vit.image_size or self.prepare.image_size
        if vit.patch_size < 1 or size % vit.patch_size:
            found.append(f"'pretrain_vit.patch_size' {vit.patch_size} must divide the image size {size}")
        return found + self._strategy_inputs()

    def _strategy_inputs(self) -> list[str]:
        """Inputs a chosen strategy reads that these settings would not produce: they fail
        at load time rather than after a cycle's training."""
        from alcycle.strategies import STRATEGIES, needs, synthesises

        found = []
        for key, name in [("strategy", self.select.strategy), ("cold_start", self.select.cold_start)]:
            wanted = needs(name) if name in STRATEGIES else frozenset()
            if "mc_probs" in wanted and (self.train.dropout <= 0 or self.extract.mc_samples < 2):
                found.append(f"'select.{key}' {name!r} needs MC-dropout samples: set 'train.dropout' > 0 "
                             f"and 'extract.mc_samples' >= 2")
            if "vit" in wanted and self.pretrain_vit.method == "none":
                found.append(f"'select.{key}' {name!r} needs a vision transformer: set 'pretrain_vit.method' "
                             f"to deepcluster or weights")
            if "gan" in wanted and self.gan.method == "none":
                found.append(f"'select.{key}' {name!r} needs a GAN: set 'gan.method' to dcgan or wgan_gp")
            if "model" in wanted and key == "cold_start":
                found.append(f"'select.cold_start' {name!r} searches with the classifier, which does not exist "
                             f"before the first labels: choose another cold start (random, typiclust, ...)")
            if name in STRATEGIES and synthesises(name) and self.train.freeze_backbone:
                found.append(f"'select.{key}' {name!r} asks new images, which embed's cached features do not "
                             f"cover: set 'train.freeze_backbone' to false")
            if "predicted_loss" in wanted and not self.train.loss_prediction.fit:
                found.append(f"'select.{key}' {name!r} needs a loss prediction module: set "
                             f"'train.loss_prediction.fit' to true")
        return found




def _strategies_need_loss(raw: dict[str, Any]) -> bool:
    """What a params.yaml written before ``train.loss_prediction.fit`` meant: train decided
    from the strategies, fitting the module when one of them reads ``predicted_loss``."""
    from alcycle.strategies import STRATEGIES, needs

    select = raw.get("select") if isinstance(raw.get("select"), dict) else {}
    names = [select.get(key) for key in ("strategy", "cold_start")]
    return any(name in STRATEGIES and "predicted_loss" in needs(name) for name in names)


# Keys a later alcycle added, with the value an older params.yaml means (given the whole
# file): filled in where the section exists and the key does not, so an older project keeps
# loading and behaving as before without editing its params.yaml (which DVC would take for
# a change and re-run stages, or every finished cell of a campaign).
ADDED_LATER: dict[str, Callable[[dict[str, Any]], Any]] = {
    "prepare.on_unreadable": lambda raw: "refuse",
    "select.image_url_prefix": lambda raw: LOCAL_FILES_PREFIX,
    "train.loss_prediction.fit": _strategies_need_loss,
    "train.label_propagation.search": lambda raw: "exact",
    "train.label_propagation.nlist": lambda raw: 0,
    "train.label_propagation.nprobe": lambda raw: 16,
    "train.label_propagation.pq_m": lambda raw: 0,
    "select.candidates": lambda raw: {"method": "all", "size": 10000, "k": 100, "search": "exact"},
    "select.candidates.search": lambda raw: "exact",
    "select.probcover": lambda raw: {"delta": 0.0, "alpha": 0.95, "clusters": 0, "search": "exact"},
    "select.probcover.search": lambda raw: "exact",
    "select.typiclust": lambda raw: {"search": "exact"},
    # Unused unless train.semi_supervised is fixmatch, which no older params.yaml names.
    "train.fixmatch": lambda raw: {"threshold": 0.95, "unlabeled_weight": 1.0, "mu": 3, "flip": False},
    "train.bgadl": lambda raw: {"variants": 0, "steps": 300, "latent_dim": 32, "width": 32, "batch_size": 32,
                                "lr": 0.0002, "kl_weight": 1.0, "reconstruction_weight": 10.0},
    # One CPU process, as every fit ran before the section existed.
    "compute": lambda raw: {"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto",
                            "precision": "32-true", "ray_address": ""},
    "compute.ray_address": lambda raw: "",
    # Unused unless select names asal, which no older params.yaml does.
    "gan": lambda raw: {"method": "none", "latent_dim": 64, "width": 32, "steps": 3000, "batch_size": 64,
                        "lr": 0.0002, "features": "pca", "pca_dim": 50},
    "select.asal": lambda raw: {"candidates": 10, "steps": 50, "lr": 0.05},
    "select.gaal": lambda raw: {"objective": "margin", "candidates": 1, "steps": 50, "lr": 0.05},
    "select.stream": lambda raw: {"window": 0, "order": "manifest", "manager": "variable_uncertainty", "budget": 0.1,
                                  "step": 0.01, "random_share": 0.1},
    "pretrain.simclr": lambda raw: {"epochs": 8, "batch_size": 256, "lr": 0.001, "temperature": 0.5,
                                    "projection_dim": 64, "min_scale": 0.3, "jitter": 0.5, "blur": False,
                                    "flip": False},
}


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
    params = _build(Params, _upgraded(raw), where="", source=source)
    problems = params.problems()
    if problems:
        raise ParamsError(f"{source}: " + "; ".join(problems))
    return params


def params_dict(params: Params) -> dict[str, Any]:
    """The parameters as a nested dict of plain values (for logging)."""
    return dataclasses.asdict(params)


def _upgraded(raw: Any) -> Any:
    """``raw`` with each ``ADDED_LATER`` key it lacks filled in (a copy; ``raw`` is left as it was)."""
    if not isinstance(raw, dict):
        return raw
    upgraded = copy.deepcopy(raw)
    for dotted, value in ADDED_LATER.items():
        *sections, key = dotted.split(".")
        section = upgraded
        for name in sections:
            section = section.get(name) if isinstance(section, dict) else None
        if isinstance(section, dict) and key not in section:
            section[key] = value(raw)
    return upgraded


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
