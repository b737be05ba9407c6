"""prefetch(array, flat_index): ask the CPU to start loading an array element into cache.

Replay kernels spend most of their time waiting for rows scattered over arrays of millions
of rows; their branches (hit or miss, seen or not) mispredict often, and every mispredict
throws away the loads the CPU had started on its own. A prefetch issued a few lookups ahead
survives that, so the row is in cache when its turn comes. It is only a hint: it never
faults and changes no result.
"""

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# LLVM 15 made pointers opaque, which renamed the intrinsic.
_INTRINSIC = "llvm.prefetch.p0" if llvm.llvm_version_info >= (15,) else "llvm.prefetch.p0i8"
_READ, _KEEP_IN_ALL_CACHES, _DATA = 0, 3, 1

# How far ahead replay kernels prefetch: the row state of a coming lookup, and of a coming
# victim in queue order (tuned on the LRU and FIFO streams of `make bench`).
ROWS_AHEAD = 32
VICTIMS_AHEAD = 16


@intrinsic
def prefetch(typingctx, array, flat_index):
    """Prefetch element flat_index of a C-contiguous array (for a 2-D array, row * columns
    + column)."""
    if not isinstance(array, types.Array) or not isinstance(flat_index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), _INTRINSIC)
        address = builder.bitcast(builder.gep(data, [args[1]]), i8p)
        builder.call(fn, [address, i32(_READ), i32(_KEEP_IN_ALL_CACHES), i32(_DATA)])
        return context.get_dummy_value()

    return types.void(array, flat_index), codegen
