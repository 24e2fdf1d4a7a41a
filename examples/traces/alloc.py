# An interpreter that allocates: build and drop object graphs of varying size.
import gc
class Node:
    __slots__ = ("key", "value", "children")
    def __init__(self, key, value):
        self.key, self.value, self.children = key, value, []
keep = []
for round in range(6):
    nodes = {}
    for i in range(2000 + 1000 * (round % 3)):
        n = Node(i, "v%d" % (i * round))
        nodes[i] = n
        if i:
            nodes[i // 3].children.append(n)
    keep.append([str(k) * 3 for k in range(0, len(nodes), 7)])
    if len(keep) > 3:
        keep.pop(0)
    del nodes
    gc.collect()
print(sum(len(k) for k in keep))
