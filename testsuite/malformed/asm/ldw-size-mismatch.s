ldw sm=0 row=0 col=0 rows=2 cols=2 w=0x0102 meta=0x00
