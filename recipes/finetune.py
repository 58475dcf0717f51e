"""Fine-tune TrOCR on text lines and export a plain VisionEncoderDecoder model.

    accelerate launch recipes/finetune.py --config recipes/trocr-base/baseline.yaml
    python recipes/finetune.py --config recipes/quickstart/baseline.yaml --max_steps 5

A bad setting or bad data prints one message and exits 2; add --debug for the traceback.
"""

import sys

from trocr_lail.cli import run_script
from trocr_lail.run import main

if __name__ == "__main__":
    sys.exit(run_script("finetune", main))
