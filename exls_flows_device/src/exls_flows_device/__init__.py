"""exls login flow: the OAuth 2.0 device authorization grant (RFC 8628) with a terminal QR code."""
