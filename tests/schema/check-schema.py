#!/usr/bin/env python3
"""Keeps scenarios/schema.json and scenarios/FORMAT.md in step with the code.

The scenario validator (orchestrator/scenario.c) and the action table
(agents/action_table.c) are the truth.  This script reads their tables with
regular expressions and checks that the JSON Schema and the format reference
say the same thing:

  metaschema   the schema is a valid draft 2020-12 schema, and every
               "examples" value in it matches the schema it sits in
  keys         for every `static const fspec NAME[] = {...}` table: the same
               keys, the same required keys and compatible JSON types in the
               schema object it maps to (an unmapped table fails)
  enums        every `const char *const NAME[]` list equals its schema enum
  actions      the action enum, each action's params (names, required, types,
               bounds, choices) and actor/target rules
  probes       differential tests: a complete scenario, then mutations of it
               (an unknown key in every object, each required key removed,
               each action with its required params, each param out of
               bounds): `cyrange validate` and the schema must agree
  scenarios    every shipped scenarios/*.json passes both
  golden       every tests/golden/cases/*.json that `cyrange validate`
               accepts passes the schema (skipped when there are none yet)
  docs         FORMAT.md: the generated action table is current, every key
               and action is mentioned, every annotated example is accepted
               (or rejected with exactly the output shown), every annotated
               fragment matches its schema definition

Prints one line per check and ends with "N passed, N failed"; exits 1 when
any check failed.

  check-schema.py                 run every check
  check-schema.py --write-docs    regenerate the action table in FORMAT.md
  check-schema.py --print-action-defs
                                  print schema fragments for every action
                                  (a starting point when adding one)

Environment: CYRANGE (the command under test, default build/cyrange; it may
carry arguments).  Needs python3-jsonschema (Debian 12: 4.10).
"""

import copy
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENARIO_C = os.path.join(ROOT, "orchestrator", "scenario.c")
ACTION_C = os.path.join(ROOT, "agents", "action_table.c")
SCHEMA = os.path.join(ROOT, "scenarios", "schema.json")
FORMAT_MD = os.path.join(ROOT, "scenarios", "FORMAT.md")
SCENARIO_DIR = os.path.join(ROOT, "scenarios")
GOLDEN_DIR = os.path.join(ROOT, "tests", "golden", "cases")

META_URI = "https://json-schema.org/draft/2020-12/schema"

# Which schema object each validator table describes.  The key is (the C
# function the table is declared in, or None at file scope; the table's
# name).  A table missing here fails the check: map it when you add one.
FSPEC_MAP = {
    (None, "top_spec"): "#",
    ("load_meta", "spec"): "#/$defs/teams",
    ("load_segments", "spec"): "#/$defs/segment",
    ("check_addresses", "spec"): "#/$defs/dhcp",
    ("load_hosts", "spec"): "#/$defs/host",
    ("load_image", "spec"): "#/$defs/diskImage",
    ("load_nics", "spec"): "#/$defs/nic",
    ("load_services", "spec"): "#/$defs/service",
    ("load_accounts", "spec"): "#/$defs/account",
    ("load_files", "spec"): "#/$defs/file",
    ("load_steps", "spec"): "#/$defs/step",
    ("load_steps", "sspec"): "#/$defs/success",
    ("load_steps", "cspec"): "#/$defs/cleanup",
    ("resolve_steps", "wspec"): "#/$defs/condition",
    ("load_checks", "spec"): "#/$defs/check",
    ("load_scoring", "spec"): "#/$defs/scoring",
    ("load_scoring", "wspec"): "#/$defs/weights",
    ("load_scoring", "dspec"): "#/$defs/detectionScoring",
    ("load_scoring", "fspec_"): "#/$defs/falsePositives",
    ("load_scoring", "cspec"): "#/$defs/containment",
    ("load_report", "spec"): "#/$defs/report",
    ("load_report", "sspec"): "#/$defs/reportSection",
    ("load_report", "rspec"): "#/$defs/rubricItem",
}

# Where each list of names in scenario.c shows up in the schema: a JSON
# Pointer to a subschema whose "enum" must equal the list.  Lists with a
# special rule are handled in check_enums().
ENUM_MAP = {
    "levels": "#/properties/level",
    "host_roles": "#/$defs/host/properties/role",
    "segment_roles": "#/$defs/segment/properties/role",
    "visibilities": "#/$defs/step/properties/visibility",
    "check_types": "#/$defs/check/properties/type",
    "protos": "#/$defs/service/properties/proto",
    "decays": "#/$defs/detectionScoring/properties/decay",
    "success_types": "#/$defs/success/properties/type",
    "outcomes": "#/$defs/condition/properties/outcome",
    "states": "#/$defs/condition/properties/state",
    "scenario_role_images": "#/$defs/roleImage",
}
ENUM_SPECIAL = {"required_sections", "http_only", "dns_only", "default_titles"}

# JSON types the validator's field types accept (scenario.c type_ok()).
FTYPE_JSON = {
    "F_STR": {"string"},
    "F_INT": {"integer"},
    "F_NUM": {"number"},
    "F_BOOL": {"boolean"},
    "F_OBJ": {"object"},
    "F_ARR": {"array"},
    "F_DUR": {"string", "integer"},
    "F_SIZE": {"string", "integer"},
    "F_STR_OR_OBJ": {"string", "object"},
    "F_ANY": {"string", "integer", "number", "boolean", "object", "array", "null"},
}

PTYPE_JSON = {
    "STRING": {"string"},
    "URLPATH": {"string"},
    "INT": {"integer"},
    "BOOL": {"boolean"},
    "DURATION": {"string", "integer"},
    "ENUM": {"string"},
    "STRLIST": {"array"},
    "PORTS": {"string"},
}


# --------------------------------------------------------------------------
# Reading the C tables

def c_unescape(s):
    out, i = [], 0
    esc = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "'": "'"}
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            out.append(esc.get(s[i + 1], s[i + 1]))
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def strip_comments(text):
    # Blank out comments but keep offsets and line numbers.
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r"/\*.*?\*/|//[^\n]*", blank, text, flags=re.S)


def function_at(text):
    """Returns f(offset) -> name of the function whose body holds offset, or
    None at file scope (definitions start at column 0, end at '}')."""
    spans = []
    cur, start, pos = None, 0, 0
    for line in text.split("\n"):
        m = re.match(r"^[A-Za-z_][\w \t\*]*?\b([A-Za-z_]\w*)\s*\(", line)
        if m and not line.rstrip().endswith(";") and not line.startswith(("typedef", "#")):
            cur, start = m.group(1), pos
        elif line.startswith("}"):
            if cur is not None:
                spans.append((start, pos + len(line), cur))
            cur = None
        pos += len(line) + 1

    def at(off):
        for a, b, name in spans:
            if a <= off <= b:
                return name
        return None
    return at


def parse_string_lists(text):
    lists = {}
    for m in re.finditer(r"(?:static\s+)?const\s+char\s*\*\s*const\s+(\w+)\s*\[\]\s*=\s*\{(.*?)\}\s*;",
                         text, re.S):
        lists[m.group(1)] = [c_unescape(s) for s in re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2))]
    return lists


def parse_fspecs(path=SCENARIO_C):
    """[(function, table, [(key, ftype, required)], line)]"""
    text = strip_comments(open(path, encoding="utf-8").read())
    func = function_at(text)
    tables = []
    for m in re.finditer(r"static\s+const\s+fspec\s+(\w+)\s*\[\]\s*=\s*\{(.*?)\}\s*;", text, re.S):
        entries = [(k, t, int(r)) for k, t, r in
                   re.findall(r'\{\s*"([^"]+)"\s*,\s*(F_\w+)\s*,\s*(\d+)\s*\}', m.group(2))]
        line = text.count("\n", 0, m.start()) + 1
        tables.append((func(m.start()), m.group(1), entries, line))
    return tables, parse_string_lists(text)


def c_eval(expr, defines):
    expr = expr.strip()
    for _ in range(10):
        new = re.sub(r"\b([A-Z_][A-Z0-9_]*)\b",
                     lambda m: "(" + defines[m.group(1)] + ")" if m.group(1) in defines else m.group(0),
                     expr)
        if new == expr:
            break
        expr = new
    expr = re.sub(r"(\d+)[uU]?[lL]{0,2}\b", r"\1", expr)
    if not re.fullmatch(r"[\d\s\*\+\-\(\)/]+", expr):
        raise ValueError("cannot evaluate C expression %r" % expr)
    return int(eval(expr, {"__builtins__": {}}))  # digits and operators only


def parse_actions(path=ACTION_C):
    """[{name, technique, visibility, needs_actor, target, summary, params:
    [{name, type, required, min, max, choices, help}]}] in table order."""
    text = strip_comments(open(path, encoding="utf-8").read())
    defines = {m.group(1): m.group(2) for m in
               re.finditer(r"^#define\s+(\w+)\s+(.+?)\s*$", text, re.M)}
    lists = parse_string_lists(text)
    ptables = {}
    strre = r'"((?:[^"\\]|\\.)*)"'
    for m in re.finditer(r"static\s+const\s+action_param\s+(\w+)\s*\[\]\s*=\s*\{(.*?)\n\s*\}\s*;", text, re.S):
        params = []
        for e in re.finditer(r'\{\s*"([^"]+)"\s*,\s*ACTION_P_(\w+)\s*,\s*(\d+)\s*,\s*([^,{}]+?)\s*,'
                             r'\s*([^,{}]+?)\s*,\s*(\w+)\s*,\s*' + strre + r'\s*\}', m.group(2)):
            name, ptype, req, lo, hi, choices, help_ = e.groups()
            params.append({
                "name": name, "type": ptype, "required": int(req),
                "min": c_eval(lo, defines), "max": c_eval(hi, defines),
                "choices": None if choices == "NULL" else lists[choices],
                "help": c_unescape(help_),
            })
        ptables[m.group(1)] = params
    m = re.search(r"const\s+action_type\s+action_types\s*\[\]\s*=\s*\{(.*?)\n\}\s*;", text, re.S)
    if m is None:
        raise ValueError("action_types[] not found in " + path)
    actions = []
    for e in re.finditer(r'\{\s*"([^"]+)"\s*,\s*(NULL|' + strre + r')\s*,\s*' + strre +
                         r'\s*,\s*(\d)\s*,\s*ACTION_TARGET_(\w+)\s*,\s*(\w+)\s*,\s*' + strre + r'\s*\}',
                         m.group(1)):
        name, _, tech, vis, actor, target, ptab, summary = e.groups()
        actions.append({
            "name": name, "technique": tech, "visibility": vis,
            "needs_actor": int(actor), "target": target, "params": ptables[ptab],
            "summary": c_unescape(summary),
        })
    if not actions:
        raise ValueError("no entries parsed from action_types[]")
    return actions


# --------------------------------------------------------------------------
# Formatting shared by the docs and the schema fragments

def fmt_duration(ms):
    """Like units_duration_format(): "1h30m", "45s", "250ms", "0s"."""
    if ms <= 0:
        return "0s"
    out = ""
    for unit, size in (("h", 3600000), ("m", 60000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            out += "%d%s" % (ms // size, unit)
            ms %= size
    return out


TYPE_DOC = {
    "STRING": "string",
    "URLPATH": "URL path",
    "INT": "integer",
    "BOOL": "boolean",
    "DURATION": "duration",
    "ENUM": "one of",
    "STRLIST": "list of strings",
    "PORTS": "port list",
}


def param_bounds_doc(p):
    t = p["type"]
    if t == "STRING":
        return "non-empty"
    if t == "URLPATH":
        return "starts with `/`"
    if t == "INT":
        return "%s–%s" % (p["min"], p["max"])
    if t == "BOOL":
        return "`true`, `false`"
    if t == "DURATION":
        return "%s–%s" % (fmt_duration(p["min"]), fmt_duration(p["max"]))
    if t == "ENUM":
        return ", ".join("`%s`" % c for c in p["choices"])
    if t == "STRLIST":
        return "1–%d non-empty strings" % p["max"]
    if t == "PORTS":
        return "e.g. `22,80,8000-8100`; at most %d ports" % p["max"]
    return ""


TARGET_DOC = {"REQUIRED": "required", "OPTIONAL": "optional", "NONE": "none"}


def action_table_md(actions):
    md = []
    md.append("| Action | Default technique | Visibility | Actor | Target | What it does |")
    md.append("|---|---|---|---|---|---|")
    for a in actions:
        md.append("| [`%s`](#action-%s) | %s | `%s` | %s | %s | %s |" % (
            a["name"], a["name"].replace(".", "").replace("_", "-"),
            "`%s`" % a["technique"] if a["technique"] else "none",
            a["visibility"], "required" if a["needs_actor"] else "none",
            TARGET_DOC[a["target"]], a["summary"].replace("|", "\\|")))
    for a in actions:
        md.append("")
        md.append('<a id="action-%s"></a>' % a["name"].replace(".", "").replace("_", "-"))
        md.append("#### `%s`" % a["name"])
        md.append("")
        rules = []
        rules.append("actor: %s" % ("required" if a["needs_actor"] else "none (must be omitted)"))
        rules.append("target: %s" % {"REQUIRED": "required", "OPTIONAL": "optional",
                                     "NONE": "none (must be omitted)"}[a["target"]])
        rules.append("technique: %s" % ("`%s`" % a["technique"] if a["technique"] else "none"))
        rules.append("visibility: `%s`" % a["visibility"])
        md.append("%s. %s." % (a["summary"][0].upper() + a["summary"][1:], "; ".join(rules)))
        md.append("")
        md.append("| Parameter | Type | Required | Bounds / values | Meaning |")
        md.append("|---|---|---|---|---|")
        for p in a["params"]:
            md.append("| `%s` | %s | %s | %s | %s |" % (
                p["name"], TYPE_DOC[p["type"]], "yes" if p["required"] else "no",
                param_bounds_doc(p), p["help"].replace("|", "\\|")))
    return "\n".join(md) + "\n"


DOC_BEGIN = "<!-- BEGIN action-table: generated by tests/schema/check-schema.py --write-docs from agents/action_table.c; do not edit by hand -->"
DOC_END = "<!-- END action-table -->"


def param_schema(p):
    """A schema fragment for one action parameter (the same rule as
    check_param() in scenario.c, as far as a schema can say it)."""
    t = p["type"]
    d = {"description": p["help"]}
    if t == "STRING":
        d.update(type="string", minLength=1)
    elif t == "URLPATH":
        d.update(type="string", pattern="^/")
    elif t == "INT":
        d.update(type="integer", minimum=p["min"], maximum=p["max"])
    elif t == "BOOL":
        d.update(type="boolean")
    elif t == "DURATION":
        d["description"] += " (duration %s to %s)" % (fmt_duration(p["min"]), fmt_duration(p["max"]))
        d["anyOf"] = [{"$ref": "#/$defs/durationString"},
                      {"type": "integer", "minimum": -(-p["min"] // 1000),
                       "maximum": p["max"] // 1000}]
    elif t == "ENUM":
        d.update(type="string", enum=list(p["choices"]))
    elif t == "STRLIST":
        d.update(type="array", minItems=1, maxItems=p["max"],
                 items={"type": "string", "minLength": 1})
    elif t == "PORTS":
        d.update(type="string", pattern=PORTS_PATTERN)
        d["description"] += " (at most %d ports)" % p["max"]
    return d


PORT_RE = "0*(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
PORTS_PATTERN = "^%s(?:-%s)?(?:,%s(?:-%s)?)*$" % ((PORT_RE,) * 4)


def action_defs(actions):
    """Schema fragments for every action: params definitions and the
    if/then rules of a step and of a cleanup."""
    defs, step_rules, cleanup_rules = {}, [], []
    for a in actions:
        key = "params-" + a["name"]
        defs[key] = {
            "description": "Parameters of %s: %s." % (a["name"], a["summary"]),
            "type": "object",
            "additionalProperties": False,
            "properties": {p["name"]: param_schema(p) for p in a["params"]},
        }
        req = [p["name"] for p in a["params"] if p["required"]]
        if req:
            defs[key]["required"] = req
        cond = {"properties": {"action": {"const": a["name"]}}, "required": ["action"]}
        then = {"properties": {"params": {"$ref": "#/$defs/" + key}}}
        if req:
            then["required"] = ["params"]
        then_step = copy.deepcopy(then)
        then_step.setdefault("required", [])
        then_step.setdefault("properties", {})
        if a["needs_actor"]:
            then_step["required"].append("actor")
        else:
            then_step["properties"]["actor"] = False
        if a["target"] == "REQUIRED":
            then_step["required"].append("target")
        elif a["target"] == "NONE":
            then_step["properties"]["target"] = False
        if not then_step["required"]:
            del then_step["required"]
        step_rules.append({"if": cond, "then": then_step})
        cleanup_rules.append({"if": copy.deepcopy(cond), "then": then})
    return defs, step_rules, cleanup_rules


# --------------------------------------------------------------------------
# Schema helpers

def load_schema():
    with open(SCHEMA, encoding="utf-8") as f:
        return json.load(f)


def resolve(schema, ptr):
    if ptr in ("#", ""):
        return schema
    node = schema
    for tok in ptr.lstrip("#").lstrip("/").split("/"):
        tok = tok.replace("~1", "/").replace("~0", "~")
        node = node[int(tok)] if isinstance(node, list) else node[tok]
    return node


def deref(schema, node, depth=0):
    while isinstance(node, dict) and "$ref" in node and depth < 20:
        node = resolve(schema, node["$ref"])
        depth += 1
    return node


ALL_TYPES = {"string", "integer", "number", "boolean", "object", "array", "null"}


def json_type(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def schema_types(schema, node, depth=0):
    """The JSON types a subschema can accept (coarse: type, enum, const,
    anyOf/oneOf union, allOf intersection, $ref)."""
    if node is True or node == {}:
        return set(ALL_TYPES)
    if node is False or depth > 20:
        return set()
    if "$ref" in node:
        types = schema_types(schema, resolve(schema, node["$ref"]), depth + 1)
    else:
        types = set(ALL_TYPES)
    if "type" in node:
        t = node["type"]
        t = {t} if isinstance(t, str) else set(t)
        if "number" in t:
            t.add("integer")
        types &= t
    for kw in ("enum",):
        if kw in node:
            types &= {json_type(v) for v in node[kw]} | ({"integer"} if any(
                json_type(v) == "integer" for v in node[kw]) else set())
    if "const" in node:
        types &= {json_type(node["const"])}
    for kw in ("anyOf", "oneOf"):
        if kw in node:
            u = set()
            for sub in node[kw]:
                u |= schema_types(schema, sub, depth + 1)
            types &= u
    for sub in node.get("allOf", []):
        types &= schema_types(schema, sub, depth + 1)
    return types


def expected_types(ftype_set):
    t = set(ftype_set)
    if "number" in t:
        t.add("integer")
    return t


def make_validator(schema, ptr="#"):
    """A validator for the subschema at ptr, with every $ref of the whole
    schema still resolvable (works with jsonschema 4.10 and later)."""
    import jsonschema
    root = {k: v for k, v in schema.items() if k != "$defs"}
    defs = dict(schema.get("$defs", {}))
    defs["__root"] = root
    if ptr in ("#", ""):
        target = "#/$defs/__root"
    elif ptr.startswith("#/$defs/"):
        target = ptr
    else:
        target = "#/$defs/__root/" + ptr[2:]
    wrapper = {"$schema": META_URI, "$defs": defs, "$ref": target}
    return jsonschema.Draft202012Validator(wrapper)


def schema_errors(validator, instance, limit=3):
    errs = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    out = []
    for e in errs[:limit]:
        where = "/" + "/".join(str(p) for p in e.absolute_path)
        out.append("%s: %s" % (where, e.message[:200]))
    return out


# --------------------------------------------------------------------------
# Running the validator

def cyrange_cmd():
    return shlex.split(os.environ.get("CYRANGE", "build/cyrange"))


def run_cyrange(args, cwd=ROOT):
    cmd = cyrange_cmd()
    exe = cmd[0]
    if not os.path.isabs(exe) and "/" in exe:
        cmd[0] = os.path.join(ROOT, exe)
    for attempt in (1, 2):
        try:
            r = subprocess.run(cmd + args, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, universal_newlines=True)
            return r.returncode, r.stdout, r.stderr
        except OSError as e:
            # A concurrent `make` may be replacing the binary: retry once.
            if attempt == 2:
                return 127, "", "cannot run %s: %s" % (cmd[0], e)
            time.sleep(1)


def cyrange_available():
    exe = cyrange_cmd()[0]
    if "/" in exe:
        path = exe if os.path.isabs(exe) else os.path.join(ROOT, exe)
        return os.access(path, os.X_OK)
    from shutil import which
    return which(exe) is not None


# --------------------------------------------------------------------------
# Checks

class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, name, detail=""):
        self.passed += 1
        print("PASS %s%s" % (name, (": " + detail) if detail else ""))

    def fail(self, name, detail):
        self.failed += 1
        lines = detail if isinstance(detail, list) else [detail]
        print("FAIL %s: %s" % (name, lines[0]))
        for line in lines[1:]:
            print("     %s" % line)

    def check(self, name, problems, detail=""):
        if problems:
            self.fail(name, problems)
        else:
            self.ok(name, detail)

    def skip(self, name, why):
        print("SKIP %s: %s" % (name, why))


def check_metaschema(rep, schema):
    import jsonschema
    probs = []
    if schema.get("$schema") != META_URI:
        probs.append('"$schema" must be %s' % META_URI)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as e:
        probs.append("not a valid draft 2020-12 schema: %s at %s" % (
            e.message, "/".join(str(p) for p in e.absolute_path)))
    rep.check("metaschema: scenarios/schema.json is a valid draft 2020-12 schema", probs)
    if probs:
        return False

    # Every "examples" value must match the subschema it documents.
    probs, count = [], 0

    def walk(node, ptr):
        nonlocal count
        if isinstance(node, dict):
            if "examples" in node and isinstance(node["examples"], list):
                v = make_validator(schema, ptr)
                for i, ex in enumerate(node["examples"]):
                    count += 1
                    for e in schema_errors(v, ex, 1):
                        probs.append("%s/examples/%d: %s" % (ptr, i, e))
            for k, sub in node.items():
                if k in ("examples", "default", "const", "enum"):
                    continue
                walk(sub, "%s/%s" % (ptr, k.replace("~", "~0").replace("/", "~1")))
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, "%s/%d" % (ptr, i))
    walk(schema, "#")
    rep.check("metaschema: %d \"examples\" values match their own schemas" % count, probs)
    return True


def object_keys(schema, ptr):
    node = deref(schema, resolve(schema, ptr))
    return node


def check_fspecs(rep, schema, tables):
    seen = set()
    for func, name, entries, line in tables:
        label = "keys: %s (%s in %s, scenario.c:%d)" % (
            FSPEC_MAP.get((func, name), "?"), name, func or "file scope", line)
        ptr = FSPEC_MAP.get((func, name))
        if ptr is None:
            rep.fail(label, "table %s in %s is not mapped to a schema object: add it to FSPEC_MAP "
                     "and describe the object in scenarios/schema.json" % (name, func or "file scope"))
            continue
        seen.add((func, name))
        try:
            node = object_keys(schema, ptr)
        except (KeyError, IndexError, ValueError):
            rep.fail(label, "schema has no %s" % ptr)
            continue
        probs = []
        props = node.get("properties", {})
        ckeys = {k for k, _, _ in entries}
        creq = {k for k, _, r in entries if r}
        skeys = set(props)
        sreq = set(node.get("required", []))
        if node.get("additionalProperties", True) is not False:
            probs.append("the validator rejects unknown keys here, the schema needs "
                         "\"additionalProperties\": false")
        if skeys - ckeys:
            probs.append("schema allows keys the validator rejects: %s" % ", ".join(sorted(skeys - ckeys)))
        if ckeys - skeys:
            probs.append("validator accepts keys the schema lacks: %s" % ", ".join(sorted(ckeys - skeys)))
        if sreq != creq:
            probs.append("required keys differ: validator %s, schema %s" % (
                sorted(creq), sorted(sreq)))
        for k, ftype, _ in entries:
            if k not in props:
                continue
            want = expected_types(FTYPE_JSON[ftype])
            got = schema_types(schema, props[k])
            if got != want:
                probs.append("'%s' is %s in the validator (JSON %s) but the schema accepts %s" % (
                    k, ftype, sorted(want), sorted(got)))
            if not deref(schema, props[k]).get("description") and not props[k].get("description"):
                probs.append("'%s' has no description" % k)
        rep.check(label, probs, "%d keys, %d required" % (len(ckeys), len(creq)))
    for key, ptr in FSPEC_MAP.items():
        if key not in seen:
            rep.fail("keys: %s" % ptr, "no table %s in %s found in scenario.c (renamed or moved?)"
                     % (key[1], key[0] or "file scope"))


def check_enums(rep, schema, lists, actions):
    for name, values in sorted(lists.items()):
        if name in ENUM_SPECIAL:
            continue
        label = "enums: %s" % name
        ptr = ENUM_MAP.get(name)
        if ptr is None:
            rep.fail(label, "list %s in scenario.c is not mapped to a schema enum (ENUM_MAP)" % name)
            continue
        try:
            node = deref(schema, resolve(schema, ptr))
        except (KeyError, IndexError):
            rep.fail(label, "schema has no %s" % ptr)
            continue
        got = node.get("enum")
        rep.check(label, [] if got == values else
                  ["scenario.c has %s, schema %s has %s" % (values, ptr, got)],
                  ", ".join(values))
    # Report sections every template must have.
    label = "enums: required_sections (report template must contain each)"
    want = lists.get("required_sections", [])
    rep_node = resolve(schema, "#/$defs/report/properties/sections")
    got = []
    for sub in rep_node.get("allOf", []):
        c = sub.get("contains", {})
        idc = c.get("properties", {}).get("id", {}).get("const")
        if idc is not None:
            got.append(idc)
    rep.check(label, [] if got == want else ["scenario.c requires %s, schema contains-rules %s" % (want, got)],
              ", ".join(want))
    # Keys that only one check type accepts.
    for lname, ctype in (("http_only", "http"), ("dns_only", "dns")):
        label = "enums: %s (check keys only for type %s)" % (lname, ctype)
        want = set(lists.get(lname, []))
        got = set()
        for sub in resolve(schema, "#/$defs/check").get("allOf", []):
            cond = sub.get("if", {}).get("properties", {}).get("type", {})
            if cond.get("not", {}).get("const") == ctype:
                got |= {k for k, v in sub.get("then", {}).get("properties", {}).items() if v is False}
        rep.check(label, [] if got == want else ["scenario.c: %s, schema forbids for non-%s: %s" % (
            sorted(want), ctype, sorted(got))])
    # Step visibility defaults must be legal visibility values.
    vis = lists.get("visibilities", [])
    bad = [a["name"] for a in actions if a["visibility"] not in vis]
    rep.check("enums: every action's default visibility is a visibility value", 
              ["%s has default visibility outside %s" % (n, vis) for n in bad])


def check_actions(rep, schema, actions):
    names = [a["name"] for a in actions]
    got = resolve(schema, "#/$defs/actionName").get("enum")
    rep.check("actions: action names (%d)" % len(names),
              [] if got == names else ["action_table.c has %s, schema #/$defs/actionName has %s" % (names, got)])
    step_rules = {}
    for sub in resolve(schema, "#/$defs/step").get("allOf", []):
        a = sub.get("if", {}).get("properties", {}).get("action", {}).get("const")
        if a:
            step_rules[a] = sub
    clean_rules = {}
    for sub in resolve(schema, "#/$defs/cleanup").get("allOf", []):
        a = sub.get("if", {}).get("properties", {}).get("action", {}).get("const")
        if a:
            clean_rules[a] = sub
    for a in actions:
        label = "actions: %s" % a["name"]
        probs = []
        key = "#/$defs/params-" + a["name"]
        try:
            node = resolve(schema, key)
        except KeyError:
            rep.fail(label, "schema has no %s" % key)
            continue
        props = node.get("properties", {})
        if node.get("additionalProperties", True) is not False:
            probs.append("params need \"additionalProperties\": false (unknown params are errors)")
        want = {p["name"] for p in a["params"]}
        if set(props) != want:
            probs.append("param names differ: table %s, schema %s" % (sorted(want), sorted(props)))
        wreq = {p["name"] for p in a["params"] if p["required"]}
        if set(node.get("required", [])) != wreq:
            probs.append("required params differ: table %s, schema %s" % (
                sorted(wreq), sorted(node.get("required", []))))
        for p in a["params"]:
            s = props.get(p["name"])
            if s is None:
                continue
            ref = param_schema(p)
            got_t = schema_types(schema, s)
            if got_t != expected_types(PTYPE_JSON[p["type"]]):
                probs.append("'%s' accepts %s, table type %s" % (p["name"], sorted(got_t), p["type"]))
            for kw in ("minimum", "maximum", "minItems", "maxItems", "enum", "pattern", "minLength"):
                if ref.get(kw) != s.get(kw):
                    probs.append("'%s': %s is %r, table says %r" % (p["name"], kw, s.get(kw), ref.get(kw)))
            if p["type"] == "DURATION":
                ints = [x for x in s.get("anyOf", []) if x.get("type") == "integer"]
                rint = ref["anyOf"][1]
                if not ints or ints[0].get("minimum") != rint["minimum"] or ints[0].get("maximum") != rint["maximum"]:
                    probs.append("'%s': integer seconds must be %d..%d" % (
                        p["name"], rint["minimum"], rint["maximum"]))
            if not s.get("description"):
                probs.append("'%s' has no description" % p["name"])
        _, rules, crules = action_defs([a])
        if step_rules.get(a["name"]) != rules[0]:
            probs.append("step rule (params, actor, target) differs; expected %s" % json.dumps(rules[0]))
        if clean_rules.get(a["name"]) != crules[0]:
            probs.append("cleanup rule differs; expected %s" % json.dumps(crules[0]))
        rep.check(label, probs, "%d params, %d required" % (len(want), len(wreq)))


# A complete scenario: every object of the format appears at least once.
def base_scenario():
    return {
        "$schema": "../../scenarios/schema.json",
        "format": 1,
        "id": "probe",
        "title": "Probe scenario",
        "description": "Every object of the format at least once.",
        "level": "B",
        "duration": "2h",
        "speed": 2.5,
        "domain": "probe.test",
        "teams": {"count": 3, "name": "Blue {n}"},
        "segments": [
            {"name": "internet", "cidr": "198.18.0.0/24", "role": "internet",
             "description": "outside"},
            {"name": "office", "cidr": "198.18.2.0/24", "role": "office",
             "dhcp": {"server": "fw", "range": ["198.18.2.100", "198.18.2.150"]}},
        ],
        "hosts": [
            {"name": "attacker", "role": "attacker",
             "nics": [{"segment": "internet", "address": "198.18.0.66"}]},
            {"name": "fw", "role": "router", "image": "router", "vcpus": 2, "memory": "256M",
             "nics": [{"segment": "internet", "address": "198.18.0.1"},
                      {"segment": "office", "address": "198.18.2.1", "dhcp": False}],
             "services": [{"name": "ssh", "proto": "tcp", "port": 22}],
             "accounts": [{"name": "root", "password": "x", "groups": ["wheel"], "admin": True}],
             "files": [{"path": "/etc/motd", "content": "hi\n", "mode": "0644"}],
             "description": "router"},
            {"name": "pc1", "role": "other", "image": {"disk": "disk.qcow2"}, "memory": 128,
             "gateway": "198.18.2.1",
             "nics": [{"segment": "office", "dhcp": True}]},
        ],
        "timeline": [
            {"id": "scan", "at": "5m", "jitter": "1m", "actor": "attacker", "action": "recon.portscan",
             "target": "fw", "params": {"ports": "22"}, "technique": "T1046",
             "visibility": "network", "description": "scan",
             "success": {"type": "check_down", "check": "ssh-up", "value": "x"},
             "cleanup": {"action": "inject.message",
                         "params": {"from": "a", "subject": "b", "body": "c"}}},
            {"id": "next", "after": "scan", "delay": 60, "actor": "attacker",
             "action": "recon.portscan", "target": "fw", "params": {"ports": "80"},
             "when": {"step": "scan", "outcome": "succeeded"}, "otherwise": "alt"},
            {"id": "alt", "on_demand": True, "action": "inject.message",
             "params": {"from": "a", "subject": "b", "body": "c"}},
            {"id": "reach", "at": 600, "action": "inject.message",
             "params": {"from": "a", "subject": "b", "body": "c"},
             "when": {"reachable": "fw", "port": 22}},
            {"id": "chk", "at": "11m", "action": "inject.message",
             "params": {"from": "a", "subject": "b", "body": "c"},
             "when": {"check": "ssh-up", "state": "down"}},
        ],
        "checks": [
            {"id": "ssh-up", "type": "tcp", "from": "attacker", "target": "fw", "port": 22,
             "interval": "30s", "timeout": "5s", "sla": 0.9, "expect": "SSH-",
             "description": "ssh"},
            {"id": "web", "type": "http", "from": "attacker", "target": "fw", "path": "/",
             "expect_status": 200},
            {"id": "dns", "type": "dns", "from": "attacker", "target": "fw", "name": "www.probe.test",
             "expect_address": "198.18.0.1"},
            {"id": "mail", "type": "smtp", "from": "attacker", "target": "fw"},
        ],
        "scoring": {
            "weights": {"detection": 40, "availability": 30, "reports": 20, "injects": 10},
            "detection": {"window": "30m", "full_credit": "5m", "decay": "step", "floor": 0.2},
            "false_positives": {"penalty": 5, "cap": 20},
            "containment": {"c2_quiet": "5m"},
        },
        "report": {"sections": [
            {"id": "detection", "title": "Detection", "prompt": "?", "required": True,
             "rubric": [{"criterion": "c", "points": 5}]},
            {"id": "response", "title": "Response"},
            {"id": "reporting", "title": "Reporting"},
            {"id": "recovery", "title": "Recovery"},
        ]},
    }


# Where an instance of each schema object sits in base_scenario().
INSTANCES = {
    "#": "",
    "#/$defs/teams": "/teams",
    "#/$defs/segment": "/segments/1",
    "#/$defs/dhcp": "/segments/1/dhcp",
    "#/$defs/host": "/hosts/1",
    "#/$defs/diskImage": "/hosts/2/image",
    "#/$defs/nic": "/hosts/1/nics/0",
    "#/$defs/service": "/hosts/1/services/0",
    "#/$defs/account": "/hosts/1/accounts/0",
    "#/$defs/file": "/hosts/1/files/0",
    "#/$defs/step": "/timeline/0",
    "#/$defs/success": "/timeline/0/success",
    "#/$defs/cleanup": "/timeline/0/cleanup",
    "#/$defs/condition": "/timeline/1/when",
    "#/$defs/check": "/checks/0",
    "#/$defs/scoring": "/scoring",
    "#/$defs/weights": "/scoring/weights",
    "#/$defs/detectionScoring": "/scoring/detection",
    "#/$defs/falsePositives": "/scoring/false_positives",
    "#/$defs/containment": "/scoring/containment",
    "#/$defs/report": "/report",
    "#/$defs/reportSection": "/report/sections/0",
    "#/$defs/rubricItem": "/report/sections/0/rubric/0",
}


def at_path(doc, path):
    node = doc
    for tok in [t for t in path.split("/") if t != ""]:
        node = node[int(tok)] if isinstance(node, list) else node[tok]
    return node


def sample_value(p):
    t = p["type"]
    if t == "STRING":
        return "x"
    if t == "URLPATH":
        return "/"
    if t == "INT":
        return p["min"]
    if t == "BOOL":
        return True
    if t == "DURATION":
        s = -(-p["min"] // 1000)
        return s if s * 1000 <= p["max"] else fmt_duration(p["min"])
    if t == "ENUM":
        return p["choices"][0]
    if t == "STRLIST":
        return ["x"]
    if t == "PORTS":
        return "22"
    raise ValueError(t)


def bad_values(p):
    """(label, value) pairs the validator rejects for parameter p."""
    t = p["type"]
    out = [("wrong type", [] if t != "STRLIST" else "x")]
    if t == "STRING":
        out.append(("empty", ""))
    elif t == "URLPATH":
        out.append(("no leading /", "x"))
    elif t == "INT":
        out += [("below min", p["min"] - 1), ("above max", p["max"] + 1)]
    elif t == "DURATION":
        out.append(("above max", p["max"] // 1000 + 1))
        if p["min"] >= 1000:
            out.append(("below min", p["min"] // 1000 - 1 if p["min"] % 1000 == 0 else 0))
        out.append(("malformed", "5 minutes"))
    elif t == "ENUM":
        out.append(("unknown value", "zzz"))
    elif t == "STRLIST":
        out += [("empty list", []), ("too long", ["x"] * (p["max"] + 1)), ("empty string", [""])]
    elif t == "PORTS":
        out += [("port 0", "0"), ("port 65536", "65536"), ("trailing comma", "22,")]
    return out


def action_step(a):
    step = {"id": "probe-step", "at": "1m", "action": a["name"]}
    if a["needs_actor"]:
        step["actor"] = "attacker"
    if a["target"] == "REQUIRED":
        step["target"] = "fw"
    params = {p["name"]: sample_value(p) for p in a["params"] if p["required"]}
    if params:
        step["params"] = params
    return step


class Prober:
    """Runs a scenario through both the validator and the schema."""

    def __init__(self, schema, tmp):
        self.v = make_validator(schema)
        self.tmp = tmp
        self.n = 0
        open(os.path.join(tmp, "disk.qcow2"), "w").close()

    def verdicts(self, doc):
        self.n += 1
        path = os.path.join(self.tmp, "p%04d.json" % self.n)
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
        rc, out, err = run_cyrange(["validate", path])
        if rc not in (0, 1):
            raise RuntimeError("cyrange validate exited %d: %s" % (rc, err.strip()[:300]))
        errs = schema_errors(self.v, doc, 2)
        return rc == 0, not errs, (err.strip().split("\n")[0] if err.strip() else ""), errs


def check_probes(rep, schema, tables, actions):
    try:
        probes(rep, schema, tables, actions)
    except RuntimeError as e:
        rep.fail("probes", str(e))


def probes(rep, schema, tables, actions):
    if not cyrange_available():
        rep.fail("probes", "%s not found: build it with make (or set CYRANGE)" % cyrange_cmd()[0])
        return
    with tempfile.TemporaryDirectory(prefix="schema-check.") as tmp:
        pr = Prober(schema, tmp)
        base = base_scenario()
        cv, sv, cerr, serr = pr.verdicts(base)
        probs = []
        if not cv:
            probs.append("cyrange rejects it: " + cerr)
        if not sv:
            probs.append("schema rejects it: " + "; ".join(serr))
        rep.check("probes: complete probe scenario is accepted by both", probs)
        if probs:
            return

        # An unknown key in every object, each required key removed.
        for func, name, entries, _ in tables:
            ptr = FSPEC_MAP.get((func, name))
            if ptr is None or ptr not in INSTANCES:
                rep.fail("probes: %s in %s" % (name, func or "file scope"),
                         "no instance of this object in the probe scenario (INSTANCES)")
                continue
            probs, n = [], 0
            muts = [("unknown key 'zzz'", lambda o: o.__setitem__("zzz", 1))]
            for k, _, req in entries:
                if req:
                    muts.append(("without '%s'" % k, lambda o, k=k: o.pop(k)))
            for what, mut in muts:
                doc = copy.deepcopy(base)
                mut(at_path(doc, INSTANCES[ptr]))
                cv, sv, cerr, serr = pr.verdicts(doc)
                n += 1
                if cv or sv:
                    probs.append("%s: cyrange %s, schema %s" % (
                        what, "accepts" if cv else "rejects", "accepts" if sv else "rejects"))
            rep.check("probes: %s (%d mutations, each rejected by both)" % (ptr, n), probs)

        # Each action: required params only, then each param broken.
        for a in actions:
            probs, n = [], 0
            doc = copy.deepcopy(base)
            doc["timeline"].append(action_step(a))
            cv, sv, cerr, serr = pr.verdicts(doc)
            n += 1
            if not (cv and sv):
                probs.append("minimal step: cyrange %s, schema %s" % (
                    "accepts" if cv else "rejects (" + cerr + ")",
                    "accepts" if sv else "rejects (" + "; ".join(serr) + ")"))
            cases = []
            for p in a["params"]:
                for what, val in bad_values(p):
                    cases.append(("param '%s' %s" % (p["name"], what), p["name"], val))
                if p["required"]:
                    cases.append(("without param '%s'" % p["name"], p["name"], KeyError))
            cases.append(("unknown param 'zzz'", "zzz", 1))
            for what, key, val in cases:
                doc = copy.deepcopy(base)
                st = action_step(a)
                st.setdefault("params", {})
                if val is KeyError:
                    st["params"].pop(key, None)
                else:
                    st["params"][key] = val
                doc["timeline"].append(st)
                cv, sv, cerr, serr = pr.verdicts(doc)
                n += 1
                if cv or sv:
                    probs.append("%s: cyrange %s, schema %s" % (
                        what, "accepts" if cv else "rejects", "accepts" if sv else "rejects"))
            # Actor and target rules.
            st = action_step(a)
            if a["needs_actor"]:
                rules = [("without actor", lambda s: s.pop("actor"))]
            else:
                rules = [("with an actor", lambda s: s.__setitem__("actor", "attacker"))]
            if a["target"] == "REQUIRED":
                rules.append(("without target", lambda s: s.pop("target")))
            elif a["target"] == "NONE":
                rules.append(("with a target", lambda s: s.__setitem__("target", "fw")))
            for what, mut in rules:
                doc = copy.deepcopy(base)
                s = action_step(a)
                mut(s)
                doc["timeline"].append(s)
                cv, sv, cerr, serr = pr.verdicts(doc)
                n += 1
                if cv or sv:
                    probs.append("%s: cyrange %s, schema %s" % (
                        what, "accepts" if cv else "rejects", "accepts" if sv else "rejects"))
            rep.check("probes: action %s (%d variants, cyrange and schema agree)" % (a["name"], n), probs)


def check_file(rep, schema, path, label, require_valid):
    """Validates one scenario file with cyrange and the schema."""
    rel = os.path.relpath(path, ROOT)
    rc, out, err = run_cyrange(["validate", rel])
    if rc != 0:
        if require_valid:
            rep.fail("%s: %s" % (label, rel), ["cyrange validate rejects it (exit %d):" % rc] +
                     err.strip().split("\n")[:5])
        return None
    try:
        # cyrange skips a UTF-8 byte order mark; so does utf-8-sig.
        with open(path, encoding="utf-8-sig") as f:
            doc = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        rep.fail("%s: %s" % (label, rel), "cyrange accepts it but Python cannot parse it: %s" % e)
        return True
    errs = schema_errors(make_validator(schema), doc, 5)
    rep.check("%s: %s passes cyrange validate and the schema" % (label, rel), errs)
    return True


def check_scenarios(rep, schema):
    if not cyrange_available():
        rep.fail("scenarios", "%s not found: build it with make (or set CYRANGE)" % cyrange_cmd()[0])
        return
    files = sorted(f for f in glob.glob(os.path.join(SCENARIO_DIR, "*.json"))
                   if os.path.basename(f) != "schema.json")
    if not files:
        rep.fail("scenarios", "no scenarios/*.json found")
    for f in files:
        check_file(rep, schema, f, "scenarios", True)
    files = sorted(set(glob.glob(os.path.join(GOLDEN_DIR, "*.json")) +
                       glob.glob(os.path.join(GOLDEN_DIR, "**", "*.json"), recursive=True)))
    if not files:
        rep.skip("golden", "no tests/golden/cases/*.json yet")
        return
    rejected = 0
    for f in files:
        if check_file(rep, schema, f, "golden", False) is None:
            rejected += 1
    print("INFO golden: %d of %d cases are rejected by cyrange validate (error cases: not "
          "checked against the schema)" % (rejected, len(files)))


def md_blocks(text):
    """Yields (annotation, info, body, line) for every fenced block of
    FORMAT.md; annotation is the <!-- ... --> comment right before it."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\S*)\s*$", lines[i])
        if m:
            j = i + 1
            while j < len(lines) and lines[j] != "```":
                j += 1
            ann = None
            k = i - 1
            while k >= 0 and lines[k].strip() == "":
                k -= 1
            if k >= 0:
                am = re.match(r"^<!--\s*((?:example|fragment|output):.*?)\s*-->\s*$", lines[k])
                if am:
                    ann = am.group(1)
            yield ann, m.group(1), "\n".join(lines[i + 1:j]), i + 1
            i = j + 1
        else:
            i += 1


def check_docs(rep, schema, tables, actions):
    if not os.path.exists(FORMAT_MD):
        rep.fail("docs", "scenarios/FORMAT.md is missing")
        return
    text = open(FORMAT_MD, encoding="utf-8").read()
    # The generated action table.
    gen = action_table_md(actions)
    b, e = text.find(DOC_BEGIN), text.find(DOC_END)
    if b < 0 or e < 0:
        rep.fail("docs: action table", "markers %r ... %r not found in FORMAT.md" % (DOC_BEGIN[:30], DOC_END))
    else:
        cur = text[b + len(DOC_BEGIN):e].strip("\n") + "\n"
        rep.check("docs: action table in FORMAT.md matches agents/action_table.c",
                  [] if cur == gen else ["out of date: run tests/schema/check-schema.py --write-docs"])
    # Every key and action name is mentioned.
    missing = sorted({k for _, _, entries, _ in tables for k, _, _ in entries
                      if "`%s`" % k not in text and '"%s"' % k not in text})
    missing += [a["name"] for a in actions if "`%s`" % a["name"] not in text]
    rep.check("docs: every key and action type is documented in FORMAT.md",
              ["not mentioned: %s" % ", ".join(missing)] if missing else [])

    # Annotated examples, outputs and fragments.
    if not cyrange_available():
        rep.fail("docs: examples", "%s not found" % cyrange_cmd()[0])
        return
    with tempfile.TemporaryDirectory(prefix="format-md.") as tmp:
        v = make_validator(schema)
        for ann, info, body, line in md_blocks(text):
            if ann is None:
                continue
            kind, _, arg = ann.partition(":")
            arg = arg.strip()
            if kind == "example":
                name, _, verdict = arg.partition(" ")
                label = "docs: FORMAT.md:%d example %s is %s" % (line, name, verdict or "valid")
                with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                    f.write(body + "\n")
                probs = []
                try:
                    doc = json.loads(body)
                except ValueError as ex:
                    doc = None
                    if verdict != "invalid":
                        probs.append("not JSON: %s" % ex)
                rc, out, err = run_cyrange(["validate", name], cwd=tmp)
                if verdict == "invalid":
                    if rc != 1:
                        probs.append("cyrange validate should reject it, exit %d" % rc)
                else:
                    if rc != 0:
                        probs.append("cyrange validate rejects it: %s" % err.strip().split("\n")[0])
                    if doc is not None:
                        probs += schema_errors(v, doc, 3)
                rep.check(label, probs)
            elif kind == "fragment":
                ptr = arg
                label = "docs: FORMAT.md:%d fragment matches %s" % (line, ptr)
                try:
                    doc = json.loads(body)
                    fv = make_validator(schema, ptr)
                    rep.check(label, schema_errors(fv, doc, 3))
                except (ValueError, KeyError) as ex:
                    rep.fail(label, str(ex))
            elif kind == "output":
                m = re.match(r"^(.*?);\s*exit\s+(\d+)$", arg)
                label = "docs: FORMAT.md:%d output of `%s`" % (line, arg)
                if not m:
                    rep.fail(label, "annotation must read 'output: cyrange ARGS; exit N'")
                    continue
                cmd, code = shlex.split(m.group(1)), int(m.group(2))
                blines = body.split("\n")
                if not blines or blines[0] != "$ " + m.group(1):
                    rep.fail(label, "the block must start with the line '$ %s'" % m.group(1))
                    continue
                # Trailing blanks are not significant (editors strip them).
                want = "\n".join(l.rstrip() for l in blines[1:]).rstrip("\n")
                rc, out, err = run_cyrange(cmd[1:], cwd=tmp)
                got = "\n".join(l.rstrip() for l in (out + err).split("\n")).rstrip("\n")
                probs = []
                if rc != code:
                    probs.append("exit status %d, the doc says %d" % (rc, code))
                if got != want:
                    probs.append("output differs; actual output:")
                    probs += got.split("\n")
                rep.check(label, probs)


def write_docs(actions):
    text = open(FORMAT_MD, encoding="utf-8").read()
    b, e = text.find(DOC_BEGIN), text.find(DOC_END)
    if b < 0 or e < 0:
        sys.exit("check-schema.py: markers not found in %s" % FORMAT_MD)
    new = text[:b + len(DOC_BEGIN)] + "\n" + action_table_md(actions) + text[e:]
    if new != text:
        with open(FORMAT_MD, "w", encoding="utf-8") as f:
            f.write(new)
        print("check-schema.py: action table in scenarios/FORMAT.md updated")
    else:
        print("check-schema.py: action table in scenarios/FORMAT.md already current")


def main(argv):
    os.chdir(ROOT)
    rep = Report()
    try:
        actions = parse_actions()
        tables, lists = parse_fspecs()
    except (OSError, ValueError, KeyError) as e:
        rep.fail("parse C tables", str(e))
        print("%d passed, %d failed" % (rep.passed, rep.failed))
        return 1
    if "--write-docs" in argv:
        write_docs(actions)
        return 0
    if "--print-action-defs" in argv:
        defs, step_rules, cleanup_rules = action_defs(actions)
        print(json.dumps({"$defs": defs, "step allOf": step_rules, "cleanup allOf": cleanup_rules},
                         indent=2))
        return 0
    if len(argv) > 1:
        print(__doc__)
        return 2
    rep.ok("parse C tables", "%d fspec tables, %d name lists in scenario.c; %d actions in action_table.c"
           % (len(tables), len(lists), len(actions)))
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        rep.fail("jsonschema", "python3-jsonschema is not installed (apt-get install python3-jsonschema)")
        print("%d passed, %d failed" % (rep.passed, rep.failed))
        return 1
    try:
        schema = load_schema()
    except (OSError, ValueError) as e:
        rep.fail("load scenarios/schema.json", str(e))
        print("%d passed, %d failed" % (rep.passed, rep.failed))
        return 1
    if check_metaschema(rep, schema):
        check_fspecs(rep, schema, tables)
        check_enums(rep, schema, lists, actions)
        check_actions(rep, schema, actions)
        check_probes(rep, schema, tables, actions)
        check_scenarios(rep, schema)
        check_docs(rep, schema, tables, actions)
    print("%d passed, %d failed" % (rep.passed, rep.failed))
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
