"""Pure modules shared by several apps; imports no Django and no sibling app."""
