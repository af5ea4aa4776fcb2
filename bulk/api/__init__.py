"""The one seam to the Pivotal API and the only aiohttp user: client, governor, retries."""
