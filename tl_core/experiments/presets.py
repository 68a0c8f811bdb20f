"""Ready experiments for teachers, each with a short lesson: what to look at and what the result means.

Schedules are chosen from measurements, not guessed: `bench/curves.py` records target accuracy
against seconds per method on the offline starter pack (bench/results/curves.json, docs/BENCHMARKS.md).
Every preset works offline: the digits come from the starter pack when the full data are absent,
and the freezing preset uses the PACS folders where they are, else a real digit pair.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tl_core.base.errors import ConfigError
from tl_core.base.paths import data_dir
from tl_core.experiments.spec import Strategy, ExperimentSpec

# LeNet on 28 px: 4 epochs x 200 steps of 64 images. On the starter pack USPS->MNIST this is where
# source only is still far behind DANN (curves.json: 960 steps give 74% vs 89%, ~17 s vs ~29 s a run).
DIGITS_SHORT = {"train": {"epochs": 4, "steps_per_epoch": 200, "embed_points": 300}}
DIGITS_MEDIUM = {"train": {"epochs": 4, "steps_per_epoch": 240}}


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    question: str
    lesson: str
    build: Callable[[], ExperimentSpec]
    seeds: tuple[int, ...] = (0,)

    def spec(self, seeds: tuple[int, ...] | None = None) -> ExperimentSpec:
        s = self.build()
        return ExperimentSpec(s.source, s.target, s.strategies, tuple(seeds or self.seeds), s.base, self.title,
                              self.name).normalised()

    def info(self) -> dict:
        s = self.spec()
        return {"name": self.name, "title": self.title, "question": self.question, "lesson": self.lesson,
                "source": s.source, "target": s.target, "seeds": list(s.seeds),
                "strategies": [st.label for st in s.strategies]}


def _pacs_root() -> Path | None:
    root = data_dir() / "PACS_subset50"
    return root if (root / "photo").is_dir() and (root / "sketch").is_dir() else None


def _quickstart() -> ExperimentSpec:
    return ExperimentSpec("usps", "mnist", (Strategy("DANN", "dann"),), base=DIGITS_SHORT)


def _alignment() -> ExperimentSpec:
    return ExperimentSpec("usps", "mnist", (Strategy("DANN", "dann"), Strategy("CDAN", "cdan"),
                                            Strategy("MMD", "mmd"), Strategy("CORAL", "coral")), base=DIGITS_MEDIUM)


def _freeze() -> ExperimentSpec:
    """The pretrained EfficientNet-Lite0 (9 stages), frozen up to all of them, source only: what
    ImageNet features carry by themselves, and what training more of the network adds or destroys."""
    root = _pacs_root()
    if root is not None:
        src, tgt, size = f"folder:{root / 'photo'}", f"folder:{root / 'sketch'}", 128
    else:  # offline without PACS: the starter pack's real digits through the same ImageNet backbone
        src, tgt, size = "mnist", "usps", 64
    base = {"model": {"backbone": "efficientnet_lite0", "input_size": size},
            "train": {"epochs": 4, "steps_per_epoch": 30, "batch_size": 32, "lr": 3e-4, "embed_points": 350}}
    strategies = tuple(Strategy(f"freeze {d} of 9" + (" (head only)" if d == 9 else " (train all)" if d == 0 else ""),
                                "source_only", model={"freeze": d}, role="baseline" if d == 9 else "")
                       for d in (9, 7, 5, 0))
    return ExperimentSpec(src, tgt, strategies, base=base)


def _labels() -> ExperimentSpec:
    return ExperimentSpec("mnist", "usps", (
        Strategy("1 label per class", "finetune", data={"target_labels": 1}),
        Strategy("5 labels per class", "finetune", data={"target_labels": 5}),
        Strategy("all target labels", "target_only", data={"target_labels": "all"}, role="upper"),
    ), base=DIGITS_MEDIUM)


def _hurts() -> ExperimentSpec:
    # Synthetic digits -> UCI digits, both built in and offline. Measured (bench/results/presets.jsonl,
    # 3 seeds): DANN at full trade-off from the first steps keeps 2 of 3 seeds from learning their source.
    return ExperimentSpec("syndigits", "uci_digits", (Strategy("DANN (trade-off 1)", "dann", {"trade_off": 1.0}),),
                          base={"train": {"epochs": 4, "steps_per_epoch": 300}})


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("quickstart", "Does adaptation help?",
           "Train on USPS (labelled) and test on MNIST (no labels used): does DANN beat plain training on the source?",
           "Watch the map of features: with source only, the orange (target) points sit apart from the blue "
           "(source) ones, and many land in the wrong class cluster. DANN adds a domain classifier that the "
           "feature extractor learns to fool, so the two clouds merge and target accuracy rises. The verdict "
           "compares both over two seeds: a gain is only real when its 95% interval, which counts the spread "
           "between seeds and the luck of the test images, stays above zero.",
           _quickstart, seeds=(0, 1)),
    Preset("alignment", "Which alignment?",
           "Four ways to align source and target features on USPS → MNIST: adversarial (DANN, CDAN) or "
           "statistical (MMD, CORAL).",
           "DANN and CDAN learn the alignment with a discriminator; CDAN conditions it on the predicted class, "
           "which keeps classes apart while domains merge. MMD and CORAL match statistics (kernel means, "
           "covariances) in closed form: cheaper and steadier, usually weaker. Compare the loss charts: the "
           "adversarial methods' domain loss hovers near log 2 when the discriminator is fooled.",
           _alignment),
    Preset("freeze", "How much to freeze?",
           "A network pretrained on ImageNet photographs: how many of its stages should stay frozen when "
           "training on a small labelled source?",
           "Frozen stages keep ImageNet features; trainable stages specialise to the source. Look at source against "
           "target accuracy per depth, and at the flags: every row here is source-only training, so a row below the "
           "head-only baseline is 'worse than the baseline', not negative transfer. A depth whose source accuracy is "
           "high while its target predictions pile onto a few classes has learned source-specific features. Measured "
           "over 3 seeds on PACS (docs/BENCHMARKS.md, why the freeze preset collapses): with 7 stages frozen, keeping "
           "BatchNorm on its ImageNet statistics lifts the sketches from 24 to 32 %, so statistics re-fitted on "
           "32-photograph batches are part of it there; with 5 frozen it changes nothing (32 against 31 %), and with "
           "none frozen little (27 against 29 %): the trainable stages themselves fit the 280 photographs (91-93 % on "
           "held-out photos) in ways that do not carry to sketches. One seed cannot rank close depths, so read the "
           "intervals. Trainable parameters and time fall as more stages freeze.",
           _freeze),
    Preset("labels", "How many target labels?",
           "MNIST → USPS with 1 or 5 labelled target images per class, against none (source only) and all "
           "of them (the upper bound).",
           "How far do a few labelled target images go? Compare each row's gain and its interval with the "
           "upper bound (all target labels): whether 1 image per class moves the classifier at all, and how "
           "much of the gap 5 close, is what this grid measures; one seed cannot tell a one-point difference "
           "from luck, and the verdict says so. Add seeds before drawing the lesson.",
           _labels),
    Preset("hurts", "When transfer hurts",
           "Synthetic digits → UCI digits: can domain alignment make things worse?",
           "Adaptation is not free, and this grid shows the commonest way it goes wrong. Measured over its 3 seeds "
           "(docs/BENCHMARKS.md, the presets table): source only learns the synthetic digits (96-97 % on them) and "
           "reaches 45-49 % on the UCI digits, 8x8 scans. DANN at full trade-off, on a network trained from scratch "
           "for 1,200 steps: one seed learns its source (95 %) and ends level with source only on the target (48 %); "
           "in the other two the source loss stays at ln 10, chance, through the first epoch while the domain loss "
           "sits at ln 2: the features were flattened to fool the discriminator before they could tell digits apart, "
           "and those seeds end at 33 % and 78 % on their own source, 27 % and 42 % on the target. So alignment hurts "
           "here by breaking training, not by mis-matching the classes of a network that learned its source: read the "
           "source accuracy and the loss charts before the target's accuracy. A seed whose source accuracy stays near "
           "chance is flagged as a failed run; one that learned its source yet ends below source only is negative "
           "transfer, and the verdict calls it so only when its interval is below zero. The honest baseline is source "
           "only.",
           _hurts, seeds=(0, 1, 2)),
)}
FIRST_VISIT = "quickstart"


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"Unknown preset {str(name)[:40]!r}; choose one of {', '.join(PRESETS)}.") from None


def list_presets() -> list[dict]:
    return [{"name": p.name, "title": p.title, "question": p.question, "lesson": p.lesson} for p in PRESETS.values()]

