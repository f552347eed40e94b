"""Save to Spotify: the listener's list becomes a playlist in their own Spotify account.

Authorization Code with PKCE, run by the gateway (spotipy): the page never holds a token and never talks
to Spotify. settings.py: what the deployer sets (MOODTUNES_SPOTIFY_*); vault.py: each listener's tokens,
encrypted with a key only their cookie holds; account.py: connect, save, disconnect; routes.py: the
HTTP edge. docs/spotify.md says why the exchange runs here and not in the page.
"""
