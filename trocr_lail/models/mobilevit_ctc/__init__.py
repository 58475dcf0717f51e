"""MobileViT line encoder with a CTC head. Kept empty: see docs/development.md."""
