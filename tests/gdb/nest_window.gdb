# Reproduces a window in shoal__rt_down (core/wait.c): rt->down is stored before nest is
# shut, so a nested call (core/store.h shoal__enter) made once down is visible can still
# find nest open and succeed. A preemption of the shutting-down thread between the two
# stores keeps the window open for a whole time slice; here gdb keeps it open for 3 s: the
# shutdown thread stops on the instruction after its store to rt->down while the other
# threads run (non-stop mode). On main 203df25 the test case then fails with
# "nested submit after down: 3 (3: 1000 succeeded)"; with nest shut before down it passes.
#   make build/tests/test_shutdown_tasks
#   SHOAL_TEST_CASE='nested calls answer shutdown' \
#     gdb -q -batch -x tests/gdb/nest_window.gdb build/tests/test_shutdown_tasks
set pagination off
set confirm off
set non-stop on
python
import re
lines = gdb.execute("disassemble shoal__rt_down", to_string=True).splitlines()
ins = [l for l in lines if re.match(r"\s+0x[0-9a-f]+ <", l)]
# rt->down's store: the xchg that is not to shoal__epoch (nest); stop right after it.
i = next(k for k, l in enumerate(ins)
         if re.search(r"\sxchg\s", l) and "shoal__epoch" not in l)
off = re.search(r"<\+(\d+)>", ins[i + 1]).group(1)
gdb.execute("break *(shoal__rt_down+%s)" % off)
end
commands
  silent
  printf "shutdown thread stopped after its store to rt->down (%d); nest = %#lx\n", shoal__rt->down, shoal__epoch.nest
  shell sleep 3
  continue
end
run
quit
