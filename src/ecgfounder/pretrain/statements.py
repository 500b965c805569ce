"""Labels from free-text interpretation statements (GE MUSE style), by rules.

A **rule set** maps patterns to labels.  The default one (:func:`default_rules`) holds, for each of
the 150 ECGFounder labels, the label's own text as a phrase (the labels *are* MUSE statement
fragments; a ``WITH X`` label also as ``X`` alone, a ``... COMPLEXES`` one also in the singular),
plus the package file ``statement_rules.csv``: synonyms and abbreviations (``RBBB``, ``IRBBB``,
``PVC``, "inferior myocardial infarction", "left atrial abnormality", "non-specific
intra-ventricular conduction block") and ``ignore`` rules for administrative text ("Confirmed by
...", "When compared with ECG of <date>", "No significant change").
Any other label set is a CSV with columns ``label,pattern[,kind]`` (:func:`load_rules`); with
``auto_phrases=True`` each label's own name is added as a phrase.

Matching, per statement (:func:`extract_statement`):

1. normalise: lower case, one space, unicode dashes to ``-``, ``non-specific`` → ``nonspecific``
   (also ``intra-``, ``inter-``, ``antero-``, ``infero-``, ``postero-``), ``A-V`` and ``atrioventricular``
   → ``av``, ``S-A`` → ``sa``;
2. every rule is searched; overlapping hits are resolved **longest first** (``normal sinus
   rhythm`` is NORMAL SINUS RHYTHM, not also SINUS RHYTHM; ``ST no longer depressed in`` is its own
   label, not a negated one); ties go to the earlier rule;
3. each kept hit gets a **state** from the cue words of its clause (clauses end at ``, ; .`` and
   "but"; a decimal point is no end), looked for only in text no rule consumed:

   - ``negated`` (-1): a preceding "no", "not", "without", "no evidence of", "negative for",
     "absence of", "no longer", or a following "no longer present/evident/seen", "resolved",
     "is absent", "not present/seen", "ruled out";
   - ``uncertain`` (2): a preceding "consider", "possible", "probable", "probably", "suggests",
     "suspect", "may be", "likely", "borderline", "cannot rule out/exclude", "rule out", or a
     following "is possible", "cannot be excluded/ruled out", "not excluded/ruled out", "suspected",
     "questionable", "(is) likely/probable", "?";
   - comparisons: in "X (has) replaced Y" X is ``positive`` and Y ``negated``; in "X (has been)
     replaced by Y" X is negated and Y positive; "now present/evident" keeps ``positive``;
   - ``prior``: a statement that starts with "previous/prior ECG (tracing)" describes the earlier
     ECG; its hits are reported but give no label to this one;
   - otherwise ``positive`` (1).  The nearest cue before the hit wins, else the first after it
     (not one that opens a later hit of the clause: "X with possible Y" leaves X positive).
4. a statement with kept label hits is ``labelled``; one consumed only by ignore rules is
   ``ignored``; one whose hits are all about the prior ECG is ``prior``; one with no hit at all is
   ``unmatched`` and listed in the report (:class:`LabelReport`).

Per record (:func:`extract_record`) the states of a label across its statements combine as
positive > uncertain > negated > none.  How uncertain labels enter the loss (masked, soft or
positive) is the training recipe's policy (:mod:`ecgfounder.pretrain.recipe`), not this module's:
the store keeps the four states.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..errors import ECGFounderError

__all__ = [
    "POSITIVE", "NEGATED", "UNCERTAIN", "NONE", "STATE_NAMES",
    "Rule", "RuleSet", "RuleError", "Hit", "StatementResult", "RecordLabels", "LabelReport",
    "default_rules", "load_rules", "phrase_pattern", "normalise",
    "extract_statement", "extract_record",
]

POSITIVE, NONE, NEGATED, UNCERTAIN = 1, 0, -1, 2
STATE_NAMES = {POSITIVE: "positive", NONE: "none", NEGATED: "negated", UNCERTAIN: "uncertain"}
_RANK = {POSITIVE: 3, UNCERTAIN: 2, NEGATED: 1, NONE: 0}  # record-level precedence
KINDS = ("label", "ignore")


class RuleError(ECGFounderError, ValueError):
    """A rule file or pattern is invalid; the message names the row and the fix."""


@dataclass(frozen=True)
class Rule:
    """``pattern`` (a Python regex over normalised text) → ``label``; ``kind`` ``ignore`` consumes
    administrative text without giving a label."""

    label: str
    pattern: str
    kind: str = "label"

    @property
    def regex(self) -> re.Pattern:
        return _compile(self.pattern)


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.IGNORECASE)


@dataclass(frozen=True)
class RuleSet:
    """Rules and the label set (column order of encoded targets)."""

    rules: tuple[Rule, ...]
    labels: tuple[str, ...]

    def index(self) -> dict[str, int]:
        return {lab: i for i, lab in enumerate(self.labels)}


_SPLIT = re.compile(r"[\s\-]+")


def phrase_pattern(phrase: str) -> str:
    """Regex for a literal phrase: words separated by any run of spaces or hyphens, bounded by
    non-alphanumerics (``VENTRICULAR-PACED RHYTHM`` matches "ventricular paced rhythm")."""
    words = [re.escape(w) for w in _SPLIT.split(normalise(phrase)) if w]
    if not words:
        raise RuleError(f"empty phrase {phrase!r}; give at least one word.")
    return r"(?<![a-z0-9])" + r"[\s\-]+".join(words) + r"(?![a-z0-9])"


_DASHES = re.compile(r"[\u2010-\u2015\u2212]")
_PREFIX = re.compile(r"\b(non|intra|inter|antero|infero|postero)[\s\-]+(?=[a-z])")
_AV = re.compile(r"(?<![a-z0-9])(a-v|s-a|atrio-?ventricular)(?![a-z0-9])")  # MUSE's "A-V block", "S-A block"
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lower case, unicode dashes to ``-``, ``non-specific`` → ``nonspecific`` (also ``intra-``,
    ``inter-``, ``antero-``, ``infero-``, ``postero-``), ``a-v`` and ``atrioventricular`` → ``av``,
    ``s-a`` → ``sa``, single spaces."""
    t = _DASHES.sub("-", str(text).lower())
    t = _PREFIX.sub(r"\1", t)
    t = _AV.sub(lambda m: "av" if m.group(1).startswith("atrio") else m.group(1).replace("-", ""), t)
    return _SPACE.sub(" ", t).strip()


def _rules_from_rows(rows: Iterable[Mapping[str, str]], where: str) -> list[Rule]:
    out = []
    for n, row in enumerate(rows, start=2):
        label = (row.get("label") or "").strip()
        pattern = (row.get("pattern") or "").strip()
        kind = (row.get("kind") or "label").strip() or "label"
        if kind not in KINDS:
            raise RuleError(f"{where} row {n}: kind {kind!r} is not one of {list(KINDS)}.")
        if not pattern or (kind == "label" and not label):
            raise RuleError(f"{where} row {n}: needs a pattern{' and a label' if kind == 'label' else ''}; got {dict(row)}.")
        if pattern.startswith("phrase:"):
            pattern = phrase_pattern(pattern[len("phrase:"):])
        try:
            _compile(pattern)
        except re.error as exc:
            raise RuleError(f"{where} row {n}: pattern {pattern!r} is not a valid regular expression ({exc}).") from None
        out.append(Rule(label, pattern, kind))
    return out


def load_rules(path: str | Path, *, labels: Sequence[str] | None = None, auto_phrases: bool = False) -> RuleSet:
    """A rule set from a CSV with columns ``label, pattern[, kind]``.

    ``pattern`` is a regex over normalised (lower-case) text, or ``phrase:WORDS`` for a literal
    phrase (see :func:`phrase_pattern`).  ``labels``: the label set and its order (default: the
    labels the file names, in first-seen order).  ``auto_phrases``: also match each label's name.
    """
    p = Path(path)
    if not p.is_file():
        raise RuleError(f"rules file {p} not found; give a CSV with columns label,pattern[,kind].")
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"label", "pattern"} <= set(reader.fieldnames):
            raise RuleError(f"{p}: columns {reader.fieldnames} lack 'label' and 'pattern'; header must be label,pattern[,kind].")
        rules = _rules_from_rows(list(reader), str(p))
    named = tuple(dict.fromkeys(r.label for r in rules if r.kind == "label"))
    labs = tuple(labels) if labels is not None else named
    unknown = sorted(set(named) - set(labs))
    if unknown:
        raise RuleError(f"{p}: rules name labels {unknown[:5]} that are not in the label set; add them to labels or fix the rule.")
    if auto_phrases:
        rules = [Rule(lab, phrase_pattern(lab)) for lab in labs] + rules
    return RuleSet(tuple(rules), labs)


@lru_cache(maxsize=1)
def default_rules() -> RuleSet:
    """The 150 ECGFounder labels as phrases plus the package's synonym and ignore rules."""
    from ..labels import load_labels

    labels = load_labels()
    text = resources.files(__package__).joinpath("statement_rules.csv").read_text(encoding="utf-8")
    rows = [r for r in csv.DictReader(io.StringIO(text)) if not (r.get("label") or "").startswith("#")]
    extra = _rules_from_rows(rows, "statement_rules.csv")
    bad = sorted({r.label for r in extra if r.kind == "label"} - set(labels))
    if bad:
        raise RuleError(f"statement_rules.csv names unknown labels {bad}.")
    return RuleSet(tuple([Rule(lab, phrase_pattern(p)) for lab in labels for p in _label_phrases(lab)] + extra), labels)


def _label_phrases(label: str) -> list[str]:
    """A label's own text, and the forms MUSE fragments stand for: ``WITH X`` also as ``X`` alone
    ("Sinus arrhythmia"), ``... COMPLEXES`` also singular ("a premature ventricular complex")."""
    out = [label]
    if label.startswith("WITH "):
        out.append(label[len("WITH "):])
    out += [p[: -len("ES")] for p in list(out) if p.endswith(" COMPLEXES")]
    return out


# --------------------------------------------------------------------------- cue words

_NEG_PRE = re.compile(r"(?<![a-z])(no evidence of|negative for|absence of|no longer|without|not|no)(?![a-z])")
_UNC_PRE = re.compile(
    r"(?<![a-z])(cannot rule out|cannot be ruled out|cannot exclude|can ?not exclude|rule out|r/o|consider|"
    r"possible|possibly|probable|probably|suggests?|suggestive of|suspect(?:ed)?|may be|likely|borderline|"
    r"questionable)(?![a-z])"
)
_NEG_POST = re.compile(r"(?<![a-z])(no longer (?:present|evident|seen)|(?:has |have )?resolved|is absent|absent|"
                       r"not (?:present|seen)|ruled out)(?![a-z])")
_UNC_POST = re.compile(r"(?<![a-z])(is possible|possible|cannot be (?:excluded|ruled out)|(?:is |are )?not (?:be )?"
                       r"(?:excluded|ruled out)|suspected|questionable|(?:is |are )?(?:likely|probable))(?![a-z])|\?")
_REPLACED = re.compile(r"(?<![a-z])((?:has |have )?replaced)(?![a-z])(?! by)")
_REPLACED_BY = re.compile(r"(?<![a-z])((?:has been |have been |was )?replaced by)(?![a-z])")
_CLAUSE = re.compile(r"[,;]|\.(?!\d)|(?<![a-z])but(?![a-z])")
_PRIOR = re.compile(r"^\W*(previous|prior|old|earlier) (ecg|ekg|tracing|study)")
_MASK = "\x00"


@dataclass(frozen=True)
class Hit:
    """One kept rule hit: ``label`` (empty for ignore rules), its state and character span."""

    label: str
    state: int
    span: tuple[int, int]
    text: str
    kind: str = "label"


@dataclass(frozen=True)
class StatementResult:
    """``status``: ``labelled``, ``ignored``, ``prior`` or ``unmatched``."""

    text: str
    status: str
    hits: tuple[Hit, ...] = ()

    @property
    def states(self) -> dict[str, int]:
        out: dict[str, int] = {}
        if self.status != "labelled":
            return out
        for h in self.hits:
            if h.kind == "label" and _RANK[h.state] > _RANK[out.get(h.label, NONE)]:
                out[h.label] = h.state
        return out


def _select(text: str, rules: RuleSet) -> list[tuple[int, int, Rule]]:
    cands = []
    for order, rule in enumerate(rules.rules):
        for m in rule.regex.finditer(text):
            if m.end() > m.start():
                cands.append((m.start(), m.end(), order, rule))
    cands.sort(key=lambda c: (-(c[1] - c[0]), c[2], c[0]))
    taken = np.zeros(len(text) + 1, dtype=bool)
    kept = []
    for s, e, _, rule in cands:
        if not taken[s:e].any():
            taken[s:e] = True
            kept.append((s, e, rule))
    kept.sort(key=lambda c: c[0])
    return kept


def _clause_bounds(masked: str, s: int, e: int) -> tuple[int, int]:
    lo = 0
    for m in _CLAUSE.finditer(masked, 0, s):
        lo = m.end()
    m = _CLAUSE.search(masked, e)
    return lo, (m.start() if m else len(masked))


def _state(masked: str, s: int, e: int) -> int:
    lo, hi = _clause_bounds(masked, s, e)
    before = masked[lo:s]
    after = masked[e:hi]
    # "X has replaced Y": Y is the old finding; "X replaced by Y": X is.
    if _REPLACED.search(before):
        return NEGATED
    if _REPLACED_BY.search(after):
        return NEGATED
    cues = [(m.end(), NEGATED) for m in _NEG_PRE.finditer(before)]
    cues += [(m.end(), UNCERTAIN) for m in _UNC_PRE.finditer(before)]
    # "cannot rule out" contains "not": the uncertainty cue ends at or after the negation one
    if cues:
        cues.sort(key=lambda c: (c[0], c[1] == UNCERTAIN))
        return cues[-1][1]
    post = []
    for rx, state in ((_NEG_POST, NEGATED), (_UNC_POST, UNCERTAIN)):
        for m in rx.finditer(after):
            # a cue that also opens a finding, with another hit after it in the clause, is that hit's:
            # "sinus rhythm with possible atrial fibrillation" (the sinus rhythm was made uncertain)
            if _MASK in after[m.end():] and (_UNC_PRE.fullmatch(m.group(0)) or _NEG_PRE.fullmatch(m.group(0))):
                continue
            post.append((m.start(), state))
    if post:
        return min(post)[1]
    return POSITIVE


def extract_statement(statement: str, rules: RuleSet | None = None) -> StatementResult:
    """Labels of one statement with their states (see the module docstring)."""
    rules = rules or default_rules()
    text = normalise(statement)
    kept = _select(text, rules)
    if not kept:
        return StatementResult(str(statement), "unmatched")
    chars = list(text)
    for s, e, _ in kept:
        chars[s:e] = _MASK * (e - s)
    masked = "".join(chars)
    prior = bool(_PRIOR.match(text))
    hits = tuple(
        Hit(r.label if r.kind == "label" else "", _state(masked, s, e) if r.kind == "label" else NONE, (s, e), text[s:e], r.kind)
        for s, e, r in kept
    )
    if not any(h.kind == "label" for h in hits):
        return StatementResult(str(statement), "ignored", hits)
    return StatementResult(str(statement), "prior" if prior else "labelled", hits)


@dataclass(frozen=True)
class RecordLabels:
    """One record's label states (``{label: state}``, states other than none) and its statements."""

    states: Mapping[str, int]
    statements: tuple[StatementResult, ...]

    def encode(self, labels: Sequence[str]) -> np.ndarray:
        """int8 ``(len(labels),)`` of states: 1 positive, 0 none, -1 negated, 2 uncertain."""
        idx = {lab: i for i, lab in enumerate(labels)}
        out = np.zeros(len(labels), dtype=np.int8)
        for lab, st in self.states.items():
            if lab in idx:
                out[idx[lab]] = st
        return out


def extract_record(statements: Iterable[str], rules: RuleSet | None = None) -> RecordLabels:
    """Combine the statements of one record: positive > uncertain > negated > none per label."""
    rules = rules or default_rules()
    results = tuple(extract_statement(s, rules) for s in statements if str(s).strip())
    states: dict[str, int] = {}
    for r in results:
        for lab, st in r.states.items():
            if _RANK[st] > _RANK[states.get(lab, NONE)]:
                states[lab] = st
    return RecordLabels(states, results)


@dataclass
class LabelReport:
    """Counts over many records: per-label states and the statements no rule matched."""

    labels: tuple[str, ...]
    n_records: int = 0
    n_statements: int = 0
    status: Counter = field(default_factory=Counter)
    per_label: dict[str, Counter] = field(default_factory=dict)
    unmatched: Counter = field(default_factory=Counter)
    ignored: Counter = field(default_factory=Counter)
    prior: Counter = field(default_factory=Counter)

    def add(self, rec: RecordLabels) -> None:
        self.n_records += 1
        for r in rec.statements:
            self.n_statements += 1
            self.status[r.status] += 1
            if r.status in ("unmatched", "ignored", "prior"):
                getattr(self, r.status)[r.text] += 1
        for lab, st in rec.states.items():
            self.per_label.setdefault(lab, Counter())[STATE_NAMES[st]] += 1

    def merge(self, other: "LabelReport") -> None:
        self.n_records += other.n_records
        self.n_statements += other.n_statements
        self.status.update(other.status)
        for k in ("unmatched", "ignored", "prior"):
            getattr(self, k).update(getattr(other, k))
        for lab, c in other.per_label.items():
            self.per_label.setdefault(lab, Counter()).update(c)

    def to_dict(self) -> dict:
        return {
            "n_records": self.n_records,
            "n_statements": self.n_statements,
            "status": dict(self.status),
            "per_label": {lab: dict(self.per_label[lab]) for lab in self.labels if lab in self.per_label},
            "unmatched": self.unmatched.most_common(),
            "ignored": self.ignored.most_common(),
            "prior": self.prior.most_common(),
        }

    @classmethod
    def from_dict(cls, labels: tuple[str, ...], d: dict) -> "LabelReport":
        """The report whose :meth:`to_dict` is ``d`` (e.g. read back from JSON)."""
        return cls(tuple(labels), int(d["n_records"]), int(d["n_statements"]), Counter(d["status"]),
                   {lab: Counter(c) for lab, c in d["per_label"].items()},
                   *(Counter(dict(d[k])) for k in ("unmatched", "ignored", "prior")))
