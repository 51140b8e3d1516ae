/* Uses only the installed header and library. */
#include <cowmem.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  size_t ps = cowmem_page_size();
  static const char msg[] = "hello from an image";
  cowmem_image_t* img = NULL;
  cowmem_slot_t* slot = NULL;
  int r = cowmem_image_new_from_bytes(msg, sizeof msg, ps, &img);
  if (r == 0) r = cowmem_slot_new(16 * ps, &slot);
  if (r == 0) r = cowmem_slot_instantiate(slot, 4 * ps, img);
  if (r != 0) {
    fprintf(stderr, "consumer: %s\n", cowmem_strerror(r));
    return 1;
  }
  const char* mem = cowmem_slot_base(slot);
  int ok = strcmp(mem + ps, msg) == 0 && mem[0] == 0;
  printf("consumer: %s\n", ok ? "ok" : "WRONG CONTENTS");
  cowmem_slot_free(slot);
  cowmem_image_release(img);
  return ok ? 0 : 1;
}
