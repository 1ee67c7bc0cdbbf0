"""Telephony I/O: SIP/RTP endpoint, call sessions, prompts, Asterisk AMI."""
