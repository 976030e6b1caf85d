"""OpenADR 3 VEN (REST/JSON on aiohttp) and its payload mapping."""
