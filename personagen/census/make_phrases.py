"""Generate census/jobs_<vintage>.yaml: readable occupation and industry phrases for every OCCP/INDP code.

Why: the codebook labels are census category titles ("Hairdressers, hairstylists, and cosmetologists",
"Seafood and other miscellaneous foods, N.E.C."); a persona says "I work as a hairdresser, hairstylist, or
cosmetologist in seafood manufacturing". The phrases are derived by rule from the codebook labels
(singular noun phrase with its article; a prepositional industry phrase chosen by the census industry group;
"N.E.C.", parentheticals, "all other" and "except ..." qualifiers dropped), and census/job_overrides.yaml
replaces the titles the rules cannot read. The output is our derived text (committed), not census records.

    python -m personagen.census.make_phrases            # rewrite census/jobs_2018.yaml and jobs_2021.yaml
    python -m personagen.census.make_phrases --check    # exit 1 when the committed files are stale
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile

import yaml

from personagen.census.codebook import attributes, codebook, load_yaml
from personagen.resources import census_dir

# 2017 Census industry code ranges (first code of each group) -> group, from the ACS PUMS INDP prefixes.
_IND_GROUPS = ((170, "AGR"), (370, "EXT"), (570, "UTL"), (770, "CON"), (1070, "MFG"), (4070, "WHL"),
               (4670, "RET"), (6070, "TRN"), (6470, "INF"), (6870, "FIN"), (7270, "PRF"), (7860, "EDU"),
               (7970, "MED"), (8560, "ENT"), (8770, "SRV"), (9370, "ADM"), (9670, "MIL"), (9920, "UNEMP"))
_IRREGULAR = {"men": "man", "women": "woman", "people": "person", "children": "child", "staff": "staff",
              "clergy": "member of the clergy", "police": "police officer", "series": "series",
              "hostesses": "hostess", "buses": "bus", "headquarters": "headquarters", "goods": "goods",
              "analyses": "analysis", "species": "species", "chassis": "chassis", "physics": "physics",
              "athletics": "athletics", "electronics": "electronics", "mechanics": "mechanic",
              "boxes": "box", "taxes": "tax", "services": "service", "businesses": "business",
              "midwives": "midwife", "wives": "wife", "knives": "knife",
              **{w: w for w in ("relations", "sales", "operations", "sciences", "systems", "communications",
                                "products", "materials", "trades", "resources", "benefits", "promotions",
                                "records", "accounts", "claims", "arts", "sports", "news", "utilities",
                                "commodities", "securities", "games", "savings", "dues")}}
_MASS_ENDINGS = ("services", "products", "goods", "activities", "industries", "materials", "supplies",
                 "equipment", "parts", "medicines", "chemicals", "electronics", "programs", "affairs",
                 "sports", "instruments", "containers", "filaments", "accessories", "tools", "metals",
                 "stampings", "minerals", "foods", "refractories", "homes", "tires", "appliances",
                 "combinations", "systems", "facilities", "trusts", "investments", "portals", "archives",
                 "camps", "dormitories", "institutions", "crematories", "cemeteries", "brokers", "agents",
                 "bolts", "enterprises", "sundries", "notions", "dwellings", "buildings", "events", "figures",
                 "research", "messengers", "clubs", "supercenters", "houses", "establishments", "bodies",
                 "rentals", "caterers")
_VOWEL_SOUND_EXCEPTIONS = ("uni", "use", "usu", "uti", "eur", "one", "u.s.")


def _lower(text: str) -> str:
    """Sentence-case census words to lower case, keeping acronyms (U.S., HVAC) and capitalised proper words."""
    keep = {"U.S.", "Air/Weapons", "English", "Internet", "Medicare", "Medicaid", "Indian", "American"}

    def piece(w: str) -> str:
        core = w.strip(",;:()")
        return w if core in keep or (core.isupper() and len(core) > 1) or "." in core else w.lower()

    def fix(w: str) -> str:
        return w if w in keep else "".join(piece(p) for p in re.split(r"([-/])", w))

    return " ".join(fix(w) for w in text.split(" "))


def _singular_word(word: str) -> str:
    low = word.lower()
    if low in _IRREGULAR:
        return _IRREGULAR[low]
    if low.endswith("ies") and len(low) > 4:
        return word[:-3] + "y"
    if re.search(r"(ches|shes|sses|xes|zes)$", low):
        return word[:-2]
    if low.endswith("s") and not low.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def is_plural(phrase: str) -> bool:
    """True when the phrase's last word reads as a plural noun (used to find the head noun of a title)."""
    last = phrase.strip().split(" ")[-1].lower() if phrase.strip() else ""
    if last in _IRREGULAR:
        return _IRREGULAR[last] != last
    return last.endswith("s") and not last.endswith(("ss", "us", "is")) and len(last) > 3


def singular(phrase: str) -> str:
    """Singular of a noun phrase: its last word singularised ("marketing managers" -> "marketing manager")."""
    words = phrase.strip().split(" ")
    words[-1] = _singular_word(words[-1])
    return " ".join(words)


def article(noun_phrase: str) -> str:
    """'a'/'an' + the phrase, by the first sound (an engineer, a union organizer, an HVAC mechanic)."""
    low = noun_phrase.lower()
    vowel = low[:1] in "aeiou" and not low.startswith(_VOWEL_SOUND_EXCEPTIONS)
    if re.match(r"^(hour|honest|heir)", low) or re.match(r"^[fhlmnrsx][A-Z]{1,4}\b", noun_phrase):
        vowel = True
    return ("an " if vowel else "a ") + noun_phrase


def _clean(label: str) -> str:
    """Drop parentheticals, N.E.C., 'all other', 'except ...'/'including ...' qualifiers, leading 'Other'."""
    s = re.sub(r"\s*\([^)]*\)", "", label).strip().rstrip(".")
    s = re.sub(r",?\s*N\.E\.C\.?( or not specified)?", "", s)
    s = re.sub(r",\s*all other$", "", s)
    s = re.sub(r",?\s*(except|including)\b.*$", "", s)
    s = re.sub(r"^(Other|Miscellaneous)\s+", "", s, flags=re.I)
    s = s.replace("--", "-").replace("Helpers-", "Helpers, ")
    return re.sub(r"\s+", " ", s).strip(" ,;")


def _conjuncts(s: str) -> list[str]:
    """Top-level items of 'A, B, and C' / 'A and B' titles."""
    parts = [p.strip() for p in re.split(r",\s*(?:and\s+|or\s+)?|\s+and\s+", s) if p.strip()]
    return parts or [s]


def _join_or(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    if len(items) == 2:
        return f"{items[0]} or {items[1]}"
    return ", ".join(items[:-1]) + f", or {items[-1]}"


def occupation_phrase(label: str) -> str | None:
    """Singular noun phrase with article for an occupation title, by rule (overrides handle the rest)."""
    if not label or label.lower().startswith(("none", "unemployed", "n/a")):
        return None
    s = _lower(_clean(label))
    if " of " in s:  # "first-line supervisors of retail sales workers": the head is before "of"
        head, rest = s.split(" of ", 1)
        return article(f"{_join_or([singular(p) for p in _conjuncts(head)])} of {rest}")
    mod = ""
    if "," in s:  # "bus drivers, transit and intercity" -> the modifier after the last comma goes in front
        head, tail = s.rsplit(",", 1)
        tail = re.sub(r"^\s*(and|or)\s+", "", tail.strip())
        if is_plural(head) and not is_plural(tail):
            s, mod = head, tail + " "
    items = _conjuncts(s)
    if len(items) > 1 and all(is_plural(p) for p in items):
        return article(mod + _join_or([singular(p) for p in items]))
    # mixed: modifiers share a head ("computer, ..., machine repairers"); singularise each plural conjunct end
    return article(mod + re.sub(r"([A-Za-z]+)(?=,| and | or |$)",
                                lambda m: _singular_word(m.group(1)) if is_plural(m.group(1)) else m.group(1), s))


def _group(code: int) -> str:
    group = "AGR"
    for start, name in _IND_GROUPS:
        if code >= start:
            group = name
    return group


def industry_phrase(code: int, label: str) -> str | None:
    """Prepositional phrase for an industry: 'at a hardware store', 'in dairy products manufacturing'."""
    group = _group(code)
    if group == "UNEMP" or not label or label.lower() == "none":
        return None
    s = _lower(_clean(label))
    s = re.sub(r"^not specified\s+(.*?)(\s+industries)?$", r"\1", s)
    s = s.replace(" merchant wholesalers", " wholesaler")
    if group == "MFG" and not re.search(r"(manufacturing|mills?|building|refining|bakeries|foundries|"
                                        r"sawmills|printing|slaughtering|processing|milling)", s):
        return f"in {s} manufacturing"
    last = s.split(" ")[-1]
    if group == "WHL" and last == "wholesaler":
        return "at " + article(s)
    if is_plural(s) and last not in _MASS_ENDINGS and not s.endswith(("retail trade", "wholesale trade")):
        return "at " + article(singular(_conjuncts(s)[0] if s.count(",") > 1 else s))
    return f"in {s}"


def build(vintage: str) -> dict:
    """{occupation: {code: phrase}, industry: {code: phrase}} for one codebook vintage, overrides applied."""
    year = next(int(y) for y, v in attributes()["years"].items() if str(v) == vintage)
    cb = codebook(year)
    over = load_yaml("job_overrides.yaml")
    occ = {int(c): occupation_phrase(lab) for c, lab in cb["OCCP"].items() if lab is not None}
    ind = {int(c): industry_phrase(int(c), lab) for c, lab in cb["INDP"].items() if lab is not None}
    occ.update({int(c): v for c, v in (over.get("occupation") or {}).items() if int(c) in occ})
    ind.update({int(c): v for c, v in (over.get("industry") or {}).items() if int(c) in ind})
    return {"vintage": int(vintage), "occupation": occ, "industry": ind}


def render_yaml(vintage: str) -> str:
    header = (f"# GENERATED by `python -m personagen.census.make_phrases` from codebook_{vintage}.yaml and\n"
              "# job_overrides.yaml: occupation code -> singular noun phrase, industry code -> prepositional phrase\n"
              "# (null = nothing to say: not working in the past five years). Edit job_overrides.yaml, not this.\n")
    return header + yaml.safe_dump(build(vintage), sort_keys=False, allow_unicode=True, width=200)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when a committed file differs")
    args = ap.parse_args(argv)
    stale = []
    for vintage in sorted(set(map(str, attributes()["years"].values()))):
        path = census_dir() / f"jobs_{vintage}.yaml"
        text = render_yaml(vintage)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
            continue
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
        print(f"wrote {path}")
    if stale:
        print(f"stale: {', '.join(stale)} (rerun python -m personagen.census.make_phrases)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
