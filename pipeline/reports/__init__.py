"""Pictures for people: plots, montages, overlays."""
