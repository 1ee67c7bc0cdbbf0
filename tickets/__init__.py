"""Work orders (工单) and the human seats that handle them."""
