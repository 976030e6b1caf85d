"""OpenADR 2.0b VEN (openleadr) and its signal mapping."""
