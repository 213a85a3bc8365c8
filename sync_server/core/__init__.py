"""The sync core: a room per loaded document, its sockets, and the gate every edit passes."""
