#!/usr/bin/python3
"""Print SPAKE2 symmetric-mode vectors from python3-spake2 with fixed randomness.

Each vector runs both sides of an exchange; the entropy of each side is
SHA-512 of a label, so the vectors are reproducible. Output is JSON lines;
spake2_test.go regenerates this file and compares it with vectors.jsonl.
"""
import hashlib
import json
import spake2
from spake2 import SPAKE2_Symmetric

def entropy(label):
    data = hashlib.sha512(label.encode()).digest()
    def f(n):
        assert n == 64, n
        return data
    return f, data

CASES = [
    # (name, password A, password B, identity)
    ("same-code", "4-purple-sausages", "4-purple-sausages", "lothar.com/wormhole/text-or-file-xfer"),
    ("wrong-code", "4-purple-sausages", "4-purple-sausagez", "lothar.com/wormhole/text-or-file-xfer"),
    ("empty", "", "", ""),
    ("unicode", "7-caf\u00e9-\u00fcber", "7-caf\u00e9-\u00fcber", "icebreaker"),
    ("other-appid", "12-aardvark-adroitness", "12-aardvark-adroitness", "example.com/app"),
]

for name, pwa, pwb, ident in CASES:
    fa, ea = entropy(name + "/A")
    fb, eb = entropy(name + "/B")
    a = SPAKE2_Symmetric(pwa.encode(), idSymmetric=ident.encode(), entropy_f=fa)
    b = SPAKE2_Symmetric(pwb.encode(), idSymmetric=ident.encode(), entropy_f=fb)
    ma, mb = a.start(), b.start()
    ka, kb = a.finish(mb), b.finish(ma)
    print(json.dumps({
        "name": name,
        "password_a": pwa.encode().hex(), "password_b": pwb.encode().hex(),
        "identity": ident.encode().hex(),
        "entropy_a": ea.hex(), "entropy_b": eb.hex(),
        "msg_a": ma.hex(), "msg_b": mb.hex(),
        "key_a": ka.hex(), "key_b": kb.hex(),
        "spake2_version": spake2.__version__,
    }, sort_keys=True))
