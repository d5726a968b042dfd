"""The embeddable widget: loader and iframe assets, config and session tokens, the frame and full page."""
