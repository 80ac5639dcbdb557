"""The embedded demo: the end-to-end pipeline on MovingPatterns (dcd.data.synthetic), Figure 5 and the small studies behind choices."""
