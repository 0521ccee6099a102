"""The Colorizer: router, specialists and the calibrated judge behind one small API.

    colorizer = Colorizer.from_weights()          # the shipped weights/ (or a folder)
    result = colorizer.colorize(Image.open("grandma.jpg"))
    result.image.save("grandma-colour.png"); result.domain, result.strategy

For each photo: route its lightness; when the router is confident, that domain's
specialist colours it; otherwise the specialists compete and the judge (a panel of
calibrated discriminators, see ``discriminators.scoring``) picks the most realistic result
(only the specialists that could still win are run: ``discriminators.scoring.contenders``).
Colour is computed at model resolution and put back on the photo's own full-resolution L
(``serve.transfer``), so the output has the input's exact size and detail.

Colour strength (0: the grey photo, 1: the model's colours, up to 2) scales ab at that join,
times the photo's own restraint (``serve.restraint``: weaker colour for photos like those
the models coloured wrongly on held-out data; 1.0 when the weights have no table).
A result (``serve.result``) keeps its model-resolution ab and its decoded photo, so another
strength is one join away (``result.with_strength(0.5)``, or ``serve.result.render``),
without running any model.

It knows nothing of files or command lines: the CLI (``serve.colorize``) and the app both
drive it with decoded images.
"""

import copy
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image
from torch import nn

from common.images import Photo, from_pil
from discriminators.scoring import EPS, Judge, beliefs, contenders, load_calibration
from specialists.output import predict_ab
from specialists.serving import for_inference, half_res_top

from .precision import CpuAutocast, generator_dtype
from .restraint import Restraint, restraint_table
from .result import (
    FORCED,
    JUDGE,
    ROUTER,
    ColorizeResult,
    Decision,
    Prediction,
    applied_strength,
    render_deep,
)
from .transfer import check_strength, model_input, model_shape
from .weights import ENV_VAR, HOW_TO_TRAIN, WeightsError, locate_weights, weights_fingerprints


class RouterLike(Protocol):
    """All the Colorizer needs of ``router.Router``."""

    domains: list[str]
    threshold: float

    def view(self, pixels: np.ndarray) -> torch.Tensor: ...

    def route(self, l_norm: torch.Tensor) -> Sequence[Decision]: ...


class Colorizer:
    """Colours photos with the routed mixture of specialists."""

    def __init__(
        self,
        router: RouterLike,
        generators: Mapping[str, nn.Module],
        judge: Judge | None = None,
        size: int = 256,
        threshold: float | None = None,
        device: str | torch.device = "cpu",
        warnings: Sequence[str] = (),
        restraint: Restraint | None = None,
        precision: str = "auto",
        fast: bool = False,
    ) -> None:
        unserved = [d for d in router.domains if d not in generators]
        if unserved:
            raise ValueError(f"router routes to {unserved} but there is no specialist for it")
        if judge is None and len(generators) > 1:
            raise ValueError("with several specialists the fallback needs a judge")
        if size < 1:
            raise ValueError(f"model size must be positive, got {size}")
        self.router = router
        self.device = torch.device(device)
        self.stride = math.lcm(*(int(getattr(g, "stride", 1)) for g in generators.values()))
        # The models are taken over, as served: on the device in eval mode, prepared for
        # inference (specialists.serving: batch norms folded, no skip concatenations, no
        # padded copies) and channels-last (oneDNN's fast path).
        self.dtype = generator_dtype(precision, self.device)
        self.generators = {name: self._served(g, self.dtype) for name, g in generators.items()}
        self.warnings = list(warnings)  # for the caller to show (uncalibrated judge ...)
        # Fast mode: each U-Net's top decoder block at half size (specialists.serving).
        self.fast = bool(fast)
        for name in [n for n, g in self.generators.items() if fast and not half_res_top(g)]:
            self.warnings.append(f"fast mode: the {name} specialist has no timm U-Net top to halve")
        for disc in judge.discriminators.values() if judge is not None else ():
            self._served(disc, torch.float32)  # in place: float32 needs no wrapper
        self.judge = judge
        self.size = int(size)
        self.threshold = float(router.threshold if threshold is None else threshold)
        self.restraint = restraint  # per-photo colour strength (serve.restraint); None: 1.0
        # Denormal floats make CPU convolutions many times slower; flushing them to zero
        # changes no visible colour. (Process-wide, and a no-op where unsupported.)
        torch.set_flush_denormal(True)

    def with_settings(self, size: int, threshold: float) -> "Colorizer":
        """The same loaded models at another resolution or threshold (nothing is reloaded
        or copied: the web page changes these per upload)."""
        if size == self.size and threshold == self.threshold:
            return self
        if size < 1:
            raise ValueError(f"model size must be positive, got {size}")
        other = copy.copy(self)
        other.size, other.threshold = int(size), float(threshold)
        return other

    def _served(self, model: nn.Module, dtype: torch.dtype) -> nn.Module:
        served = for_inference(model, inplace=True)  # same colours, faster
        served.to(self.device, memory_format=torch.channels_last)
        return served if dtype == torch.float32 else CpuAutocast(served, dtype)

    @property
    def domains(self) -> list[str]:
        return list(self.generators)

    def falls_back(self, decision: Decision) -> bool:
        """Whether the judge decides: the router is unsure and there is more than one choice."""
        return not decision.confident(self.threshold) and len(self.generators) > 1

    def judge_picks(self, decisions: Sequence[Decision], realism: torch.Tensor) -> list[str]:
        """The judge's choice of domain for each photo, given the (B, K) realism of the
        candidates of ``self.domains`` and what the router believed."""
        probs = beliefs(decisions, self.domains)
        return [self.domains[int(i)] for i in self.judge.pick(realism.cpu(), probs)]

    @classmethod
    def from_weights(
        cls,
        folder: str | Path | None = None,
        device: str = "cpu",
        size: int | None = None,
        threshold: float | None = None,
        restraint: bool = True,
        precision: str = "auto",
        fast: bool = False,
    ) -> "Colorizer":
        """Load everything from a weights folder (default: the shipped ``weights/``).

        ``size`` defaults to the specialists' training resolution; ``restraint=False``
        ignores the folder's per-photo colour restraint (every photo at full strength);
        ``precision`` is the generators' float type on the CPU (``serve.precision``); ``fast``
        serves each U-Net's top decoder block at half size (``specialists.serving``); raises
        :class:`~serve.weights.WeightsError` with how to fix it when anything is missing.
        """
        from common.lazy_dynamo import import_timm
        from discriminators import load_discriminator
        from router import RouterError, load_router
        from specialists import load_generator

        import_timm()  # before the models import it: without torch's compiler (1.1-1.3 s)
        weights = locate_weights(folder)
        try:
            router = load_router(weights.router, device)
        except RouterError as exc:
            hint = HOW_TO_TRAIN.format(root=weights.root, env=ENV_VAR)
            raise WeightsError(f"{exc}\n{hint}") from None
        unserved = [d for d in router.domains if d not in weights.specialists]
        if unserved:
            raise WeightsError(
                f"{weights.root}: the router routes to {unserved} but "
                f"{', '.join(f'specialists/{d}.safetensors' for d in unserved)} is missing"
            )
        generators, discriminators = {}, {}
        for domain, path in weights.specialists.items():
            try:
                generators[domain] = load_generator(path, device)
                discriminators[domain] = load_discriminator(path, device)
            except (RuntimeError, ValueError, KeyError) as exc:  # CheckpointError included
                raise WeightsError(f"{path}: cannot rebuild its models ({exc})") from None
        calibration, router_weight, notes = None, 0.0, []
        hashes = weights_fingerprints(weights)  # once, for the judge's and restraint's checks
        if weights.judge is None:
            notes.append(
                f"{weights.root}: no judge.json, so fallback uses uncalibrated discriminator "
                "scores; fit it with python -m training.ship.calibrate_judge"
            )
        else:
            try:
                calibration, info = load_calibration(weights.judge)
            except ValueError as exc:
                raise WeightsError(str(exc)) from None
            router_weight = float(info.get("router_weight", 0.0))
            fitted = info.get("checkpoints", {})
            stale = [d for d in weights.specialists if fitted.get(d) != hashes[d]]
            if stale:
                notes.append(
                    f"{weights.judge}: fitted on other weights for {stale}; "
                    "re-run python -m training.ship.calibrate_judge"
                )
        judge = Judge(discriminators, calibration, router_weight)
        size = size if size is not None else max(weights.sizes.values())
        table = restraint_table(weights, hashes, notes) if restraint else None
        return cls(
            router, generators, judge, size, threshold, device, notes, table, precision, fast
        )

    def colorize(
        self, image: Image.Image | Photo, domain: str | None = None, strength: float = 1.0
    ) -> ColorizeResult:
        """Colour one photo (a PIL image or a decoded :class:`~common.images.Photo`)."""
        return self.colorize_batch([image], domain, strength)[0]

    @torch.inference_mode()
    def colorize_batch(
        self,
        images: Sequence[Image.Image | Photo],
        domain: str | None = None,
        strength: float = 1.0,
    ) -> list[ColorizeResult]:
        """Colour several photos; those with the same model-input shape share forward passes.

        ``domain`` forces one specialist for all of them (no routing, no judge);
        ``strength`` scales their colour (0: the grey photo, 1: the model's, at most 2).
        """
        strength = check_strength(strength)
        photos = [im if isinstance(im, Photo) else from_pil(im) for im in images]
        return [
            self.finish(p, pred, strength) for p, pred in zip(photos, self.predict(photos, domain))
        ]

    def route(self, photos: Sequence[Photo]) -> list[Decision]:
        """The router's decisions for decoded photos, on ``router.view`` of their own pixels
        (what ``python -m router.evaluate`` measures, whatever the model size)."""
        if not photos:
            return []
        return list(self.router.route(torch.cat([self.router.view(p.pixels) for p in photos])))

    def input_shape(self, photo: Photo) -> tuple[int, int]:
        """(height, width) the models see this photo at: its bucket (``transfer.model_shape``)."""
        return model_shape(*photo.size, self.size, self.stride)

    @torch.inference_mode()
    def predict(
        self, photos: Sequence[Photo], domain: str | None = None, every: bool = False
    ) -> list[Prediction]:
        """Model-resolution colours of decoded photos: the models' part of :meth:`colorize_batch`.

        Photos of one model-input shape (see ``serve.transfer.model_shape``) share the
        generators' passes; the router sees the whole batch in one pass. ``domain`` forces
        one specialist for all of them (no routing, no judge). ``every`` has every
        specialist colour every photo and the judge score them all (what evaluation
        compares); the choice is the same as without it.
        """
        if domain is not None and domain not in self.generators:
            raise ValueError(f"unknown domain {domain!r}; known: {', '.join(self.generators)}")
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, photo in enumerate(photos):
            groups[self.input_shape(photo)].append(i)
        inputs = {
            shape: torch.cat([model_input(photos[i].pixels, shape, self.device) for i in members])
            for shape, members in groups.items()
        }
        out: list[Prediction | None] = [None] * len(photos)
        # On a GPU the models run in float16 (tensor cores); on the CPU the generators run in
        # self.dtype (serve.precision), router and judge in float32. The colour maths after
        # the models is float32 either way.
        with torch.autocast("cuda", torch.float16, enabled=self.device.type == "cuda"):
            decisions: dict[int, Decision] = {}
            if domain is None and photos:
                order = [i for members in groups.values() for i in members]
                decisions = dict(zip(order, self.route([photos[i] for i in order])))
            for shape, members in groups.items():
                if domain is None:
                    made = self._colour(inputs[shape], [decisions[i] for i in members], every)
                else:
                    made = self._forced(inputs[shape], domain)
                for i, prediction in zip(members, made):
                    prediction.candidates = {  # float16 on a GPU
                        name: ab.float() for name, ab in prediction.candidates.items()
                    }
                    out[i] = prediction
        for i, factor in enumerate(self.restraints([decisions.get(i) for i in range(len(out))])):
            out[i].restraint = factor  # type: ignore[union-attr]
        return out  # type: ignore[return-value]

    def restraints(self, decisions: Sequence[Decision | None]) -> list[float]:
        """Each routed photo's colour restraint (serve.restraint); 1.0 for a forced domain,
        a router that gives no embedding, or weights without a restraint table."""
        factors = [1.0] * len(decisions)
        if self.restraint is None:
            return factors
        known = [i for i, d in enumerate(decisions) if getattr(d, "embedding", None) is not None]
        if known:
            found = self.restraint.strengths_for(np.stack([decisions[i].embedding for i in known]))
            for i, factor in zip(known, found):
                factors[i] = float(factor)
        return factors

    def _forced(self, l_norm: torch.Tensor, domain: str) -> list[Prediction]:
        """Model-resolution colours of a batch of same-shape inputs, all by one specialist."""
        ab = predict_ab(self.generators[domain], l_norm)
        return [Prediction(domain, FORCED, None, {domain: ab[i]}) for i in range(len(ab))]

    def _colour(
        self, l_norm: torch.Tensor, decisions: Sequence[Decision], every: bool = False
    ) -> list[Prediction]:
        """Model-resolution colours of a batch of same-shape inputs, routed by ``decisions``.

        The one route-and-fallback rule: a photo the router is sure of gets its domain's
        specialist; the others (all of them with ``every``) are judged among the specialists'
        colourings (:meth:`_judged_candidates`), and an unsure one gets the judge's pick.
        """
        judged: list[int] = []
        routed: dict[str, list[int]] = defaultdict(list)
        for i, decision in enumerate(decisions):
            if every or self.falls_back(decision):
                judged.append(i)
            else:
                routed[decision.domain].append(i)
        picks: list[Prediction | None] = [None] * len(decisions)
        for name, members in routed.items():
            ab = predict_ab(self.generators[name], l_norm[members])
            for j, i in enumerate(members):
                picks[i] = Prediction(name, ROUTER, decisions[i], {name: ab[j]})
        if judged:
            subset = l_norm[judged]
            made, realism = self._judged_candidates(subset, [decisions[i] for i in judged], every)
            chosen = [None] * len(judged)
            if realism is not None:
                chosen = self.judge_picks([decisions[i] for i in judged], realism)
            for j, i in enumerate(judged):
                unsure = self.falls_back(decisions[i])
                scores = {} if realism is None else dict(zip(self.domains, map(float, realism[j])))
                picks[i] = Prediction(
                    chosen[j] if unsure else decisions[i].domain,
                    JUDGE if unsure else ROUTER,
                    decisions[i],
                    made[j],
                    {name: r for name, r in scores.items() if not math.isnan(r)},
                    chosen[j],
                )
        return picks  # type: ignore[return-value]

    def _judged_candidates(
        self, l_norm: torch.Tensor, decisions: Sequence[Decision], every: bool
    ) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor | None]:
        """The candidates the judge needs, per photo, and their (B, K) realism (NaN: not
        scored).

        The router's favourite is coloured and scored first; another specialist colours a
        photo only if it could still win the pick (``discriminators.scoring.contenders``), or
        with ``every``. A favourite that nothing could outvote, whatever the discriminators
        said, is not scored: the pick is the same and most judged photos need no judge.
        Without a judge (one specialist) every candidate is made, unscored.
        """
        names = self.domains
        made: list[dict[str, torch.Tensor]] = [{} for _ in decisions]
        if self.judge is None:
            for name in names:
                ab = predict_ab(self.generators[name], l_norm)
                for j in range(len(decisions)):
                    made[j][name] = ab[j]
            return made, None
        probs = beliefs(decisions, names)
        favourite = probs.argmax(dim=1)
        realism = torch.full(probs.shape, math.nan)

        def colour(wanted: torch.Tensor, scored: torch.Tensor) -> None:  # (B, K), (B,) bool
            for k, name in enumerate(names):
                rows = wanted[:, k].nonzero()[:, 0].tolist()
                if not rows:
                    continue
                ab = predict_ab(self.generators[name], l_norm[rows])
                for n, j in enumerate(rows):
                    made[j][name] = ab[n]
                keep = [n for n, j in enumerate(rows) if scored[j]]
                if keep:
                    judged = [rows[n] for n in keep]
                    scores = self.judge.score(l_norm[judged], [ab[keep]])
                    realism[judged, k] = scores[:, 0].float().cpu()

        first = torch.zeros(probs.shape, dtype=torch.bool)
        first[torch.arange(len(decisions)), favourite] = True
        if every:
            colour(first, torch.ones(len(decisions), dtype=torch.bool))
            colour(~first, torch.ones(len(decisions), dtype=torch.bool))
            return made, realism
        # realism is at least EPS: where no other candidate could win even then, the
        # favourite is the pick whatever it scores, and the discriminators need not run
        weight = self.judge.router_weight
        worst = torch.full(favourite.shape, EPS)
        open_rows = (contenders(worst, probs, favourite, weight) & ~first).any(dim=1)
        colour(first, open_rows)
        best = realism.gather(1, favourite[:, None])[:, 0]
        rest = contenders(best, probs, favourite, weight) & ~first & open_rows[:, None]
        colour(rest, open_rows)
        return made, realism

    @torch.inference_mode()
    def finish(self, photo: Photo, pick: Prediction, strength: float = 1.0) -> ColorizeResult:
        """Put a prediction's colour on the photo's own full-resolution lightness (no model
        runs: the CLI does this in worker threads while the models colour the next batch)."""
        strength_used = applied_strength(strength, pick.restraint)
        image, deep = render_deep(photo, pick.ab, strength_used, self.device)
        return ColorizeResult(
            image=image,
            deep=deep,
            domain=pick.domain,
            probs=pick.probs,
            confidence=pick.confidence,
            strategy=pick.strategy,
            scores=pick.scores,
            already_colour=photo.already_colour,
            notes=list(photo.notes),
            model_size=(int(pick.ab.shape[-1]), int(pick.ab.shape[-2])),
            strength=strength,
            ab=pick.ab.cpu().clone(),  # not a view that keeps the batch alive
            photo=photo,
            restraint=pick.restraint,
            decision=pick.decision,
        )
