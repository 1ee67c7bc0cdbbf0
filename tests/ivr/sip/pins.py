"""What the bot's REGISTER would draw at random, pinned the same in the capture and in the
tests: Asterisk echoes the tag and branch in its 401 and 200, and the digest covers none
of them, so the REGISTER the controller builds can be compared byte for byte."""

REGISTER_TAG = "b0710001"
REGISTER_BRANCHES = ("z9hG4bKregister1", "z9hG4bKregister2")
INSTANCE = "00000000-0000-4000-8000-000000012345"  # the +sip.instance urn:uuid
