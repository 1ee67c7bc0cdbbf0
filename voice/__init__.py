"""What the bot says: the prompt library (recorded prompts, rendered speech, the cache)
and the text-to-speech engines behind it. Used by telephony, the managers' tools and the
console alike, so it imports nothing of theirs."""
