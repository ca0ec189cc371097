#!/usr/bin/env python3
"""Verify Waybill's per-project hash chains from `waybill dump` output.

Independent of Waybill's own code: Python 3 standard library only, following
docs/ledger-format.md. Reads JSON lines (a file argument, or stdin), each with
`position` and `record` (hex of the stored bytes) and optionally `hash`. Lines
from `nats stream get --json` (compacted to one line, e.g. with `jq -c .`) are
accepted too: `seq`, `data` (base64) and the `Waybill-Hash` header in `hdrs`.

Only the record bytes are trusted. For each record, in input order:
  prev_hash (field 5)   == chain hash of the project's previous record
  project_seq (field 4) == previous project_seq + 1
  `hash` of the line    == SHA-256(prev_hash || record), when present
where the project is field 3 of the record. A message of the stream whose
`Waybill-Hash` header is missing or is not SHA-256(its field 5 || its bytes),
or that is not on its record's own subject (<prefix>.<project>.<type as
kebab-case>), was not written there by Waybill (docs/ledger-format.md,
section 2.4): it is in no chain, and is reported as FOREIGN and passed over. Exit 0: `ok: ...` and
each project's head; exit 1: the first break, or foreign messages; exit 2:
usage or I/O error.
"""

import base64
import binascii
import hashlib
import json
import sys

GENESIS = bytes(32)


class Undecodable(Exception):
    pass


def show(name):
    """A project name safe to print on one line (escapes control characters)."""
    return name.encode("unicode_escape").decode("ascii")


def varint(buf, i):
    """Decodes a base-128 varint at buf[i]; returns (value, next index)."""
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise Undecodable("truncated or overlong varint at byte %d" % i)
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value & 0xFFFFFFFFFFFFFFFF, i


def fields(buf):
    """Top-level protobuf fields: {number: (wire type, value)}, the last one wins."""
    out, i = {}, 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise Undecodable("field number 0 at byte %d" % i)
        if wire == 0:  # varint
            value, i = varint(buf, i)
        elif wire == 1:  # 64-bit
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:  # length-delimited
            length, i = varint(buf, i)
            value, i = buf[i:i + length], i + length
        elif wire == 5:  # 32-bit
            value, i = buf[i:i + 4], i + 4
        else:
            raise Undecodable("unsupported wire type %d (field %d)" % (wire, number))
        if i > len(buf):
            raise Undecodable("field %d runs past the end of the record" % number)
        out[number] = (wire, value)
    return out


def field(fs, number, wire, default):
    if number not in fs:
        return default
    if fs[number][0] != wire:
        raise Undecodable("field %d has wire type %d, not %d" % (number, fs[number][0], wire))
    return fs[number][1]


def kebab(name):
    """`PipelineConfigured` -> `pipeline-configured` (a subject's type token)."""
    return "".join("-" + c.lower() if c.isupper() and i else c.lower()
                   for i, c in enumerate(name))


def not_waybills(record, claimed, subject):
    """Why a message of the stream is no Waybill record, or None if it is one:
    its Waybill-Hash header must be SHA-256(prev_hash || bytes), prev_hash
    being its field 5, and its subject <prefix>.<project>.<type token>."""
    if not claimed:
        return "no Waybill-Hash header"
    try:
        fs = fields(record)
        prev = bytes(field(fs, 5, 2, b""))
    except Undecodable:
        fs, prev = None, None
    if prev is None or len(prev) != 32 or \
            claimed[0].lower() != hashlib.sha256(prev + record).hexdigest():
        return "its Waybill-Hash header does not match its bytes"
    try:
        project = field(fs, 3, 2, b"").decode("utf-8")
        kind = field(fs, 6, 2, b"").decode("utf-8").rsplit(".", 1)[-1]
    except (Undecodable, UnicodeDecodeError):
        return None  # a record this script cannot read further: the chain checks say
    if subject is not None and subject.split(".")[1:] != [project, kebab(kind)]:
        return "a record of project %s on another subject than its own" % show(project)
    return None


def parse_line(line):
    """(position, record bytes, claimed hashes, claimed project, claimed seq,
    False for a dump line, else the stream message's subject, or None if the
    line does not give it)."""
    obj = json.loads(line)
    if "data" in obj and "seq" in obj:  # `nats stream get --json`
        headers = base64.b64decode(obj.get("hdrs", "")).decode("utf-8", "replace")
        claimed = None
        for h in headers.split("\r\n")[1:]:
            name, _, value = h.partition(":")
            if name.strip().lower() == "waybill-hash":
                claimed = value.strip()
        return (int(obj["seq"]), base64.b64decode(obj["data"]),
                [] if claimed is None else [claimed], None, None, obj.get("subject"))
    # `hash` is what Waybill computed; `stored_hash` what was stored beside the record.
    claimed = [str(obj[k]) for k in ("hash", "stored_hash") if obj.get(k) is not None]
    return (int(obj["position"]), bytes.fromhex(obj["record"]), claimed,
            obj.get("project"), obj.get("project_seq"), False)


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print("usage: verify-chain.py [DUMP.jsonl]   (stdin when absent)", file=sys.stderr)
        return 2
    try:
        if len(argv) == 2:
            source = open(argv[1], encoding="utf-8", errors="replace")
        else:
            source = sys.stdin
            source.reconfigure(encoding="utf-8", errors="replace")
    except OSError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    heads = {}  # project -> (seq, hash, position)
    events, last_pos = 0, 0
    foreign = 0

    def broken(where, message):
        print("BROKEN at %s: %s" % (where, message))
        print("  %d events verified before the break" % events)
        return 1

    with source:
        for lineno, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                pos, record, claimed, dump_project, dump_seq, message = parse_line(line)
            except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as e:
                return broken("line %d" % lineno, "not a dump line (%s)" % e)
            if pos <= last_pos:
                return broken("position %d" % pos, "not after position %d" % last_pos)
            last_pos = pos
            if message is not False:
                why = not_waybills(record, claimed, message)
                if why:
                    print("FOREIGN at position %d: not written by Waybill (%s)" % (pos, why))
                    foreign += 1
                    continue
            try:
                fs = fields(record)
                project = field(fs, 3, 2, b"").decode("utf-8")
                seq = field(fs, 4, 0, 0)
                prev = bytes(field(fs, 5, 2, b""))
            except (Undecodable, UnicodeDecodeError) as e:
                return broken("position %d" % pos, "undecodable record: %s" % e)
            where = "position %d (project %s)" % (pos, show(project))
            head_seq, head_hash, _ = heads.get(project, (0, GENESIS, 0))
            if prev != head_hash:
                return broken(where, "prev_hash expected %s, found %s"
                              % (head_hash.hex(), prev.hex()))
            if seq != head_seq + 1:
                return broken(where, "project_seq expected %d, found %d" % (head_seq + 1, seq))
            digest = hashlib.sha256(head_hash + record).digest()
            for given in claimed:
                if given.lower() != digest.hex():
                    return broken(where, "hash given %s, recomputed %s" % (given, digest.hex()))
            if dump_project is not None and (dump_project, dump_seq) != (project, seq):
                return broken(where, "the line says project %s seq %s, the record %s seq %d"
                              % (show(str(dump_project)), dump_seq, show(project), seq))
            heads[project] = (seq, digest, pos)
            events += 1
    print("%s: %d events, %d projects"
          % ("chains intact" if foreign else "ok", events, len(heads)))
    for project in sorted(heads):
        seq, digest, pos = heads[project]
        print("  %s: %d events, head at position %d hash %s"
              % (show(project), seq, pos, digest.hex()))
    if foreign:
        print("  %d message(s) on the stream were not written by Waybill" % foreign)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
