# agents/images/images.mk — guest images: `make images`.  Included by the
# top Makefile (uses BUILD, CC, CFLAGS).  agents/images/README.md says what
# is in each image.
#
#   $(BUILD)/images/vmlinuz               Debian cloud kernel (from the .deb)
#   $(BUILD)/images/ROLE.cpio.gz          router server workstation attacker
#   $(BUILD)/images/disk-boot.cpio.gz     generic initramfs: root=/dev/vda
#   $(BUILD)/images/base-test.qcow2       example user base disk (ext4)
#   $(BUILD)/images/images.json           manifest
#   $(BUILD)/cache/debs/                  downloaded kernel package (kept)
#   $(BUILD)/images-work/                 unpacked kernel, root trees, tools
#
# Rebuilt only when an input changes: the scripts and overlay files, the
# agent, the image's own C tools, and the Debian packages (stamp files that
# stamp.sh rewrites only when a version changes).

IMG_SRC    := agents/images
IMG_OUT    := $(BUILD)/images
IMG_WORK   := $(BUILD)/images-work
IMG_CACHE  := $(BUILD)/cache/debs
IMG_AGENT  ?= $(BUILD)/cyrange-agent
IMG_ROLES  := router server workstation attacker

IMG_ROLE_IMAGES := $(IMG_ROLES:%=$(IMG_OUT)/%.cpio.gz)
IMG_TOOLS  := $(IMG_WORK)/tools/mini-smtpd $(IMG_WORK)/tools/mini-ftpd \
              $(IMG_WORK)/tools/mini-c2d
IMG_ALL    := $(IMG_OUT)/vmlinuz $(IMG_ROLE_IMAGES) $(IMG_OUT)/disk-boot.cpio.gz \
              $(IMG_OUT)/base-test.qcow2 $(IMG_OUT)/images.json

IMG_SCRIPTS := $(IMG_SRC)/lib.sh $(IMG_SRC)/mkrootfs.sh
IMG_COMMON  := $(shell find $(IMG_SRC)/rootfs/common -type f -o -type l 2>/dev/null)

# The image's C tools are static, so sanitizer flags (make asan) are dropped;
# everything else, -Werror included, comes from the top Makefile.
IMG_CFLAGS  = $(filter-out -fsanitize=% -fno-sanitize=% -fsanitize-%,$(CFLAGS)) \
              -I$(IMG_SRC)/common

.PHONY: images images-inputs images-boot-test images-clean

images: $(IMG_ALL)

# Always run; the stamps change (and trigger rebuilds) only with versions.
images-inputs:

$(IMG_WORK)/kernel.stamp: images-inputs
	@sh $(IMG_SRC)/stamp.sh kernel $@

$(IMG_WORK)/tools.stamp: images-inputs
	@sh $(IMG_SRC)/stamp.sh tools $@

$(IMG_OUT)/vmlinuz: $(IMG_WORK)/kernel.stamp $(IMG_SRC)/mkkernel.sh \
                    $(IMG_SRC)/kernel-pkg.sh $(IMG_SRC)/lib.sh
	sh $(IMG_SRC)/mkkernel.sh $(IMG_CACHE) $(IMG_WORK) $(IMG_OUT)

$(IMG_WORK)/tools/mini-smtpd: $(IMG_SRC)/smtpd/mini-smtpd.c $(IMG_SRC)/common/imgauth.c \
                              $(IMG_SRC)/common/imgauth.h $(IMG_SRC)/common/srvio.c \
                              $(IMG_SRC)/common/srvio.h
	@mkdir -p $(@D)
	@test -f "$$($(CC) -print-file-name=libcrypt.a)" || { echo "images: libcrypt.a missing: install the Debian package 'libcrypt-dev'" >&2; exit 1; }
	$(CC) $(IMG_CFLAGS) -static -o $@ $(filter %.c,$^) -lcrypt

$(IMG_WORK)/tools/mini-ftpd: $(IMG_SRC)/ftpd/mini-ftpd.c $(IMG_SRC)/common/imgauth.c \
                             $(IMG_SRC)/common/imgauth.h $(IMG_SRC)/common/srvio.c \
                             $(IMG_SRC)/common/srvio.h
	@mkdir -p $(@D)
	@test -f "$$($(CC) -print-file-name=libcrypt.a)" || { echo "images: libcrypt.a missing: install the Debian package 'libcrypt-dev'" >&2; exit 1; }
	$(CC) $(IMG_CFLAGS) -static -o $@ $(filter %.c,$^) -lcrypt

# The attacker's HTTP C2 listener (beacons, uploads, tools): no libraries.
$(IMG_WORK)/tools/mini-c2d: $(IMG_SRC)/c2d/mini-c2d.c $(IMG_SRC)/common/srvio.c \
                            $(IMG_SRC)/common/srvio.h
	@mkdir -p $(@D)
	$(CC) $(IMG_CFLAGS) -static -o $@ $(filter %.c,$^)

# One rule per role: its overlay's files are its inputs.
define IMG_ROLE_RULE
$(IMG_OUT)/$(1).cpio.gz: $(IMG_WORK)/tools.stamp $(IMG_OUT)/vmlinuz $(IMG_AGENT) $(IMG_TOOLS) \
                         $(IMG_SCRIPTS) $(IMG_COMMON) \
                         $(shell find $(IMG_SRC)/rootfs/$(1) -type f -o -type l 2>/dev/null)
	sh $(IMG_SRC)/mkrootfs.sh $(1) $(IMG_WORK) $(IMG_AGENT) $(IMG_WORK)/tools $$@
endef
$(foreach r,$(IMG_ROLES),$(eval $(call IMG_ROLE_RULE,$(r))))

$(IMG_OUT)/disk-boot.cpio.gz: $(IMG_WORK)/tools.stamp $(IMG_OUT)/vmlinuz \
                              $(IMG_SRC)/mkdisk.sh $(IMG_SRC)/lib.sh $(IMG_SRC)/disk/init
	sh $(IMG_SRC)/mkdisk.sh boot $(IMG_WORK) $@

$(IMG_OUT)/base-test.qcow2: $(IMG_WORK)/tools.stamp $(IMG_OUT)/vmlinuz $(IMG_AGENT) \
                            $(IMG_SCRIPTS) $(IMG_COMMON) $(IMG_SRC)/mkdisk.sh \
                            $(shell find $(IMG_SRC)/disk -type f 2>/dev/null)
	sh $(IMG_SRC)/mkdisk.sh base $(IMG_WORK) $@ $(IMG_AGENT)

$(IMG_OUT)/images.json: $(IMG_SRC)/mkmanifest.sh $(IMG_OUT)/vmlinuz $(IMG_ROLE_IMAGES) \
                        $(IMG_OUT)/disk-boot.cpio.gz $(IMG_OUT)/base-test.qcow2
	sh $(IMG_SRC)/mkmanifest.sh $(IMG_WORK) $(IMG_OUT) $(IMG_AGENT)

# Boots every role under libvirt (TCG) on an isolated L2 network and checks
# the agent, the services and the web application.  Needs root and libvirtd.
images-boot-test: images
	sh $(IMG_SRC)/test/boot-test.sh $(IMG_OUT)

images-clean:
	rm -rf $(IMG_OUT) $(IMG_WORK)
