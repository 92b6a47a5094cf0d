"""What both faces share, importing neither face."""
