"""Fine-tune TrOCR on text lines and export a plain VisionEncoderDecoder model.

    accelerate launch recipes/finetune.py --config recipes/trocr-base/baseline.yaml
    python recipes/finetune.py --config recipes/quickstart/baseline.yaml --max_steps 5
"""

from trocr_lail.run import main

if __name__ == "__main__":
    main()
