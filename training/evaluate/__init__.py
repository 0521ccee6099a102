"""Measure the served colorizer on labelled photos, system by system.

    python -m training.evaluate ../shared/data/colorize-v1 --weights weights --out runs/eval

DATA_DIR holds one folder of colour photos per domain, or ``val/<domain>`` (and ``test/``)
splits; ``val`` is evaluated by default (choose settings such as ``--threshold`` on photos
held out of train, never on the ones reported). Every photo is coloured from its lightness
alone and compared with the original.

Each photo is resized, routed, coloured by *every* specialist and judged once; every system
is then a choice among those candidate colourings, so the systems differ only in the choice:

- ``grayscale``: a = b = 0, the black-and-white photo itself (the baseline to beat);
- ``general_only``: the ``--general`` specialist for every photo (no router);
- ``specialist:<name>``: that specialist for every photo (gives the cross-domain matrix);
- ``argmax``: the router's most likely domain, whatever its confidence;
- ``fallback``: the served system (``serve.Colorizer``): the routed domain when the router is
  confident, else the judge's most realistic candidate ("routed" in the targets and grid);
- ``oracle``: the specialist of the photo's true domain (perfect routing).

The chosen ab goes back on the photo's full-resolution L (``serve.transfer.rejoin``), as
users get it. Metrics: PSNR (RGB, dB), SSIM, Hasler-Suesstrunk colourfulness, the truth's,
their gap (signed, predicted minus true, and relative to the truth's in %), the hue entropy
and brown/orange share of visible chroma (and the truth's), the top-1 agreement of an
ImageNet MobileNetV2 between the coloured photo and the original, and the Frechet distance
between the MobileNetV2 features of the coloured photos and of the originals (both null,
with a note, when its offline weights are not installed; see ``training.evaluate.realism``). Every
figure is also split by source tag (the file name's prefix) within each domain. Averages
are over photos; ``overall`` pools every photo (domains weigh by their photo counts).

JSON keys: ``data``, ``split``, ``weights``, ``size``, ``threshold``, ``restraint``, ``fast``
(serving's fast mode), ``domains`` (evaluated,
router order), ``specialists``, ``general``, ``photos`` (count scored),
``photos_per_domain``, ``systems`` (system -> domain or ``overall`` -> ``photos``,
``psnr``, ``ssim``, ``colourfulness``, ``colourfulness_true``, ``colourfulness_gap``,
``colourfulness_gap_pct``, ``hue_entropy``, ``brown_share`` (each also ``_true``),
``frechet``, ``agreement``), ``sources`` (``domain/tag`` -> ``grayscale``, ``general_only``,
``fallback`` -> the same summary), ``people_to_portrait`` ({photos, to_portrait}),
``cross_domain`` (``specialists`` x ``domains``
matrices ``psnr``, ``colourfulness_gap``, ``colourfulness_gap_pct``), ``routing``
(``accuracy``, ``per_domain``, ``confusion`` {labels, matrix: rows true, columns routed},
``fallback_fraction``), ``below_threshold`` (``photos``, ``threshold``, ``argmax``,
``fallback`` and ``oracle`` summaries on exactly the photos that fell back,
``judge_picked_true_domain``), ``targets`` (list of {``target``, ``status``: met / missed /
not applicable, ``values``}), ``seen_in_training`` (specialist -> {``photos``: how many of
the evaluated photos it or what it was fine-tuned from trained on, ``by_source``,
``trained_on``, ``untraced``}: figures on those photos are in-sample), ``classifier``
({name, available, note}), ``per_photo``,
``unreadable``, ``skipped`` (photos outside the router's domains), ``unseen`` (whether
``--unseen`` left the specialists' training photos out), ``notes``, and the paths
``json``, ``markdown``, ``grid`` written.

Exit codes: 0 done (unreadable files are reported, not fatal), 1 nothing could be scored,
2 usage error (missing folder, no domain folders, missing weights, unwritable output).

The package, by job: ``photos`` (the labelled photos, the limit, decoding), ``scoring``
(colour every candidate, measure it), ``agreement`` (the ImageNet classifier), ``report``
(the systems and their tables), ``targets``, ``seen`` (which photos each specialist learnt
from), ``render`` (markdown and grid) and ``cli``;
the measures it shares with ``training.compare``: ``quality`` (PSNR, SSIM, colourfulness,
tables, grids) and ``realism`` (Frechet distance, hue and chroma statistics); and
``python -m training.evaluate.dedup``, which finds near-identical photos across splits.
"""
