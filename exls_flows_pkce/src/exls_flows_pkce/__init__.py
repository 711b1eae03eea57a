"""exls login flow: authorization code with PKCE in the browser, loopback redirect (RFC 8252)."""
