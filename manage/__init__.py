"""The managers' side: versioned configuration (menu, knowledge base, prompts and
recordings) with hot reload, call records, figures and hot topics."""
